package auth

import "sync/atomic"

// fileSource is what the built-in implementations (UsersFile, ACLFile)
// share: a file, the generation load last made of it (swapped atomically,
// so that checks never take a lock), and Reload.
type fileSource[T any] struct {
	path string
	load func(path string) (*T, error)
	cur  atomic.Pointer[T]
}

// open loads the file at path with load, which Reload uses again.
func (f *fileSource[T]) open(path string, load func(string) (*T, error)) error {
	f.path, f.load = path, load
	return f.Reload()
}

// Path returns the file's path.
func (f *fileSource[T]) Path() string { return f.path }

// Reload reads the file again. When it fails to load, the version in force
// stays and the error names the file and the line.
func (f *fileSource[T]) Reload() error {
	v, err := f.load(f.path)
	if err != nil {
		return err
	}
	f.cur.Store(v)
	return nil
}

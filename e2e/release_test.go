package e2e

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The version and commit the packaging tests stamp into the binaries they
// build, and expect back from `stompica version`.
const (
	releaseTestVersion = "9.8.7-e2e"
	releaseTestCommit  = "e2e0c0ffee12"
)

// makeRelease runs `make release` for linux/amd64 alone into dir and returns
// the binary's path. The other targets (linux/arm64, darwin/arm64,
// windows/amd64) cost a cross-compile each and cannot run here; `make
// release` without RELEASE_TARGETS builds them all.
func makeRelease(t *testing.T, dir string) string {
	t.Helper()
	runMake(t, "release", "RELEASE_TARGETS=linux/amd64", "RELEASE_DIR="+dir,
		"VERSION="+releaseTestVersion, "COMMIT="+releaseTestCommit)
	return filepath.Join(dir, "stompica-"+releaseTestVersion+"-linux-amd64")
}

// TestRelease: `make release` output runs here, says the version it was built
// with, is static, carries no path of the build machine and no VCS stamp,
// comes with a matching SHA256SUMS, and two builds give the same bytes.
func TestRelease(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("SKIP: the release test runs the linux/amd64 binary; this is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	trackSources.Do(statSources)
	work := t.TempDir()
	a := makeRelease(t, filepath.Join(work, "a"))
	b := makeRelease(t, filepath.Join(work, "b"))

	binA, err := os.ReadFile(a)
	if err != nil {
		t.Fatalf("make release did not write %s: %v", a, err)
	}
	binB, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(binA, binB) {
		t.Errorf("two release builds differ: %d and %d bytes (sha256 %s and %s)", len(binA), len(binB), sha256Hex(binA), sha256Hex(binB))
	}

	sums, err := os.ReadFile(filepath.Join(filepath.Dir(a), "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256Hex(binA) + "  " + filepath.Base(a) + "\n"; string(sums) != want {
		t.Errorf("SHA256SUMS is %q, want %q", sums, want)
	}

	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(a, arg).CombinedOutput()
		want := fmt.Sprintf("stompica %s (commit %s, %s linux/amd64)\n", releaseTestVersion, releaseTestCommit, runtime.Version())
		if err != nil || string(out) != want {
			t.Errorf("%s %s: %v %q, want %q", filepath.Base(a), arg, err, out, want)
		}
	}
	checkReleaseBinary(t, a)
}

// checkReleaseBinary checks what the release flags promise of a linux
// binary: static, -trimpath, no VCS stamp, no build id.
func checkReleaseBinary(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s is not an ELF binary: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: it is not static", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", path, libs)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if root := moduleRoot(t); bytes.Contains(data, []byte(root)) {
		t.Errorf("%s contains the build machine's path %s: -trimpath missing", path, root)
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatalf("no Go build info in %s: %v", path, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["-trimpath"] != "true" || settings["CGO_ENABLED"] != "0" {
		t.Errorf("%s was not built with the release flags (-trimpath, CGO_ENABLED=0): %v", path, settings)
	}
	// -ldflags=-buildid= leaves the Go build id note empty: a build id hashes
	// the inputs' paths and would differ between machines.
	if note := f.Section(".note.go.buildid"); note != nil {
		b, err := note.Data()
		// the note is: namesz, descsz, type (4 bytes each), "Go\x00\x00", desc
		if err != nil || len(b) < 16 || b[4]|b[5]|b[6]|b[7] != 0 {
			t.Errorf("%s has a Go build id (-buildid= missing): note % x", path, b)
		}
	}
	for k := range settings {
		if strings.HasPrefix(k, "vcs") {
			t.Errorf("%s carries the VCS stamp %s=%s, which differs between checkouts", path, k, settings[k])
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

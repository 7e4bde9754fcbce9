package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbedFromAnotherModule: another module can import the server package by
// its full path. A module outside this one, with a replace directive pointing
// here, builds and runs a program that starts a broker on a random port and
// shuts it down.
func TestEmbedFromAnotherModule(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	module := strings.TrimPrefix(strings.SplitN(string(gomod), "\n", 2)[0], "module ")
	if module != "github.com/stompica/stompica" {
		t.Fatalf("module path %q, want github.com/stompica/stompica", module)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/embedder\n\ngo 1.26.0\n\nrequire " + module + " v0.0.0\n\nreplace " + module + " => " + root + "\n",
		"go.sum": string(sum),
		"main.go": `package main

import (
	"context"
	"fmt"
	"os"

	"` + module + `/server"
)

func main() {
	srv, err := server.New(&server.Options{Host: "127.0.0.1", Port: -1})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(1)
	}
	fmt.Println("listening:", srv.Addr() != nil)
	if err := srv.Shutdown(context.Background()); err != nil {
		fmt.Println("shutdown:", err)
		os.Exit(1)
	}
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// -mod=mod lets go fill in go.sum lines the embedder needs beyond ours
	// (from the module cache this repository's build already filled).
	cmd := exec.Command("go", "run", "-mod=mod", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run in a module outside this one: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "listening: true") {
		t.Fatalf("embedding program printed %q", out)
	}
}

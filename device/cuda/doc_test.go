package cuda

import (
	"go/build/constraint"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// TestDocumentedInDefaultBuild (issue 12: `go doc ./device/cuda` showed
// nothing in a default build): doc.go carries the package documentation and
// no build constraint.
func TestDocumentedInDefaultBuild(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil || !strings.HasPrefix(f.Doc.Text(), "Package cuda is a device.Driver") {
		t.Fatalf("doc.go has no package documentation")
	}
	for _, g := range f.Comments {
		for _, c := range g.List {
			if constraint.IsGoBuild(c.Text) || constraint.IsPlusBuild(c.Text) {
				t.Errorf("doc.go has a build constraint %q: go doc would show nothing without it", c.Text)
			}
		}
	}
}

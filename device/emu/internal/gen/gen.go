// Package gen writes the kernel registry of device/emu: for every kernel
// source (kernels/*.cu of the module, device/emu/testdata/*.cu) one C++ file
// that includes emu.h and the source and tabulates its extern "C" __global__
// entry points with a trampoline each, and one file that lists those tables.
// The output is committed; device/emu's tests regenerate it and fail if it
// differs, so a kernel added or changed without `go generate ./device/emu`
// is caught.
package gen

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Prefix starts the name of every generated file: gen_<dir>_<base>.cpp (the
// plain unit of a source), gen_<dir>_<base>.checked.cpp (its checked unit)
// and gen_registry.cpp.
const Prefix = "gen_"

// CheckedSuffix ends the name of a checked unit.
const CheckedSuffix = ".checked.cpp"

// Kernel is one entry point found in a source.
type Kernel struct {
	Name string
	// First and Last are the lines of the body's braces.
	First, Last int
	// SharedDecls are the kernel's static __shared__ declarations that can
	// be sized at file scope; Unsized says why the others cannot.
	SharedDecls []string
	Unsized     []string
}

// Input is a file the generated units depend on, with its SHA-256: a
// kernel source, a header of kernels/, or a file a source includes from
// outside device/emu. cgo does not notice changes to files outside the
// package directory (and testdata/ is outside it), so these hashes are what
// makes an edit change a generated file; the registry lists them so that a
// test binary can check, before its first launch, that it runs the sources
// on disk (see emu's checkSources).
type Input struct {
	Path string // slash-separated, relative to the module root
	Sum  [32]byte
}

// source is one .cu file as the package directory device/emu sees it.
type source struct {
	path    string // on disk
	rel     string // slash-separated, relative to the module root
	include string // relative to device/emu
	id      string // <dir>_<base>, a C identifier
	table   string // C symbol of its table
	file    string // generated plain unit
	checked string // generated checked unit
}

// Sources returns the kernel sources of the module rooted at root, sorted:
// kernels/*.cu, then device/emu/testdata/*.cu (module-relative, slashes).
func Sources(root string) ([]string, error) {
	var out []string
	for _, dir := range []string{"kernels", "device/emu/testdata"} {
		paths, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(dir), "*.cu"))
		if err != nil {
			return nil, err
		}
		sort.Strings(paths)
		for _, p := range paths {
			out = append(out, dir+"/"+filepath.Base(p))
		}
	}
	return out, nil
}

// Generate returns the generated files (name -> content) for the module
// rooted at root.
func Generate(root string) (map[string][]byte, error) {
	files, _, err := generate(root)
	return files, err
}

// Inputs returns the files Generate reads for the module rooted at root,
// with their hashes, sorted by path: what the registry lists.
func Inputs(root string) ([]Input, error) {
	_, inputs, err := generate(root)
	return inputs, err
}

func generate(root string) (map[string][]byte, []Input, error) {
	rels, err := Sources(root)
	if err != nil {
		return nil, nil, err
	}
	var srcs []source
	for _, rel := range rels {
		dir, base := path.Split(rel)
		tag, inc := "kernels", "../../kernels/"
		if dir != "kernels/" {
			tag, inc = "testdata", "testdata/"
		}
		id := tag + "_" + sanitize(strings.TrimSuffix(base, ".cu"))
		srcs = append(srcs, source{
			path:    filepath.Join(root, filepath.FromSlash(rel)),
			rel:     rel,
			include: inc + base,
			id:      id,
			table:   "gt_emu_table_" + id,
			file:    Prefix + id + ".cpp",
			checked: Prefix + id + CheckedSuffix,
		})
	}

	// Every header next to the kernels is hashed into every generated
	// file, and so is every file a source includes (transitively) from
	// outside device/emu.
	headers, err := filepath.Glob(filepath.Join(root, "kernels", "*.cuh"))
	if err != nil {
		return nil, nil, err
	}
	for _, pat := range []string{"*.h", "*.hpp", "*.inc"} {
		more, err := filepath.Glob(filepath.Join(root, "kernels", pat))
		if err != nil {
			return nil, nil, err
		}
		headers = append(headers, more...)
	}
	sort.Strings(headers)
	sums := map[string][32]byte{} // module-relative path -> hash, every input
	hash := func(p string) (string, error) {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return "", err
		}
		rel = filepath.ToSlash(rel)
		if _, ok := sums[rel]; !ok {
			data, err := os.ReadFile(p)
			if err != nil {
				return "", err
			}
			sums[rel] = sha256.Sum256(data)
		}
		return rel, nil
	}

	out := map[string][]byte{}
	seen := map[string]string{}
	pkgDir := filepath.Join(root, "device", "emu")
	for _, s := range srcs {
		text, err := os.ReadFile(s.path)
		if err != nil {
			return nil, nil, err
		}
		if _, err := hash(s.path); err != nil {
			return nil, nil, err
		}
		deps, err := includes(s.path, pkgDir)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %v", s.rel, err)
		}
		inputs := []string{s.rel}
		for _, d := range slices.Concat(headers, deps) {
			rel, err := hash(d)
			if err != nil {
				return nil, nil, err
			}
			if !slices.Contains(inputs, rel) {
				inputs = append(inputs, rel)
			}
		}
		sort.Strings(inputs[1:])
		var hashes strings.Builder
		for _, in := range inputs {
			fmt.Fprintf(&hashes, "// %s sha256 %x\n", in, sums[in])
		}
		macros, fileNames := fileScopeNames(root, string(text))
		kernels, err := Scan(s.rel, string(text), macros, fileNames)
		if err != nil {
			return nil, nil, err
		}
		for _, k := range kernels {
			if prev, ok := seen[k.Name]; ok {
				return nil, nil, fmt.Errorf("%s: kernel %s is also defined in %s", s.rel, k.Name, prev)
			}
			seen[k.Name] = s.rel
		}
		decls, err := sharedLines(root, slices.Concat([]string{s.path}, deps, headers))
		if err != nil {
			return nil, nil, err
		}
		out[s.file] = plainFile(s, hashes.String(), kernels, decls)
		out[s.checked] = checkedFile(s, hashes.String(), kernels)
	}
	var inputs []Input
	for rel, sum := range sums {
		inputs = append(inputs, Input{Path: rel, Sum: sum})
	}
	sort.Slice(inputs, func(i, j int) bool { return inputs[i].Path < inputs[j].Path })
	out[Prefix+"registry.cpp"] = registryFile(srcs, inputs)
	return out, inputs, nil
}

func sanitize(s string) string {
	return regexp.MustCompile(`[^A-Za-z0-9]`).ReplaceAllString(s, "_")
}

var includeRE = regexp.MustCompile(`(?m)^[ \t]*#[ \t]*include[ \t]*"([^"]+)"`)

// includes returns the files that file includes with #include "...",
// transitively, resolved against the including file's directory, except
// those in pkgDir (device/emu itself, which the go command tracks). A
// missing file is an error: nvcc would fail too.
func includes(file, pkgDir string) ([]string, error) {
	var out []string
	seen := map[string]bool{file: true}
	var walk func(f string) error
	walk = func(f string) error {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, m := range includeRE.FindAllStringSubmatch(StripComments(string(data)), -1) {
			p := filepath.Clean(filepath.Join(filepath.Dir(f), filepath.FromSlash(m[1])))
			if seen[p] {
				continue
			}
			seen[p] = true
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("#include %q in %s: %v", m[1], filepath.Base(f), err)
			}
			if filepath.Dir(p) != pkgDir {
				out = append(out, p)
			}
			if err := walk(p); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(file); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

const header = "// Code generated by device/emu/internal/emugen; DO NOT EDIT.\n" +
	"// Regenerate with: go generate ./device/emu\n\n"

// plainFile is the plain unit of a source: the kernels as they are, their
// trampolines and static shared sizes, and the table of the source.
func plainFile(s source, hashes string, kernels []Kernel, decls []string) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	b.WriteString(hashes)
	fmt.Fprintf(&b, "\n#define GT_EMU_SHM_SECTION \"gt_emu_shm.p.%s\"\n", s.id)
	b.WriteString("#include \"emu.h\"\n")
	fmt.Fprintf(&b, "#include %q\n\n", s.include)
	for _, k := range kernels {
		fmt.Fprintf(&b, "static GT_EMU_NOCHECK void gt_emu_tramp_%s(const uint64_t* a) { ::gt_emu::invoke(&%s, a); }\n", k.Name, k.Name)
		fmt.Fprintf(&b, "extern \"C\" void gt_emu_ctramp_%s(const uint64_t* a); // %s\n", k.Name, s.checked)
		for _, u := range k.Unsized {
			fmt.Fprintf(&b, "// static shared memory not counted: %s\n", u)
		}
		if len(k.SharedDecls) > 0 {
			// The kernel's static shared variables as members: sizeof is
			// their total (with alignment padding, much as on a GPU).
			fmt.Fprintf(&b, "struct gt_emu_shm_%s {\n", k.Name)
			for _, d := range k.SharedDecls {
				fmt.Fprintf(&b, "    %s;\n", d)
			}
			b.WriteString("};\n")
		}
		b.WriteString("\n")
	}
	b.WriteString("// The __shared__ declarations of the unit by line (the section of each is\n")
	fmt.Fprintf(&b, "// gt_emu_shm.<p|c>.%s.<line>), for reports.\n", s.id)
	fmt.Fprintf(&b, "static const char* const gt_emu_decls_%s[] = {\n", s.id)
	for i := 0; i+1 < len(decls); i += 2 {
		fmt.Fprintf(&b, "    %q, %q,\n", decls[i], decls[i+1])
	}
	b.WriteString("    nullptr,\n};\n\n")
	fmt.Fprintf(&b, "extern \"C\" const gt_emu_kernel %s[] = {\n", s.table)
	for _, k := range kernels {
		size := "0"
		if len(k.SharedDecls) > 0 {
			size = fmt.Sprintf("(long long)sizeof(gt_emu_shm_%s)", k.Name)
		}
		fmt.Fprintf(&b, "    {%q, ::gt_emu::arity(&%s), &gt_emu_tramp_%s, %s, &gt_emu_ctramp_%s, %q, gt_emu_decls_%s, %d, %d},\n",
			k.Name, k.Name, k.Name, size, k.Name, s.id, s.id, k.First, k.Last)
	}
	b.WriteString("    {nullptr, 0, nullptr, 0, nullptr, nullptr, nullptr, 0, 0},\n};\n")
	return b.Bytes()
}

// checkedFile is the checked unit of a source: the same source compiled
// with instrumentation (GT_EMU_CHECKED), inside a namespace of its own so
// that none of its functions merges with the plain unit's at link time, and
// with its kernels renamed (an extern "C" name ignores namespaces).
func checkedFile(s source, hashes string, kernels []Kernel) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	b.WriteString(hashes)
	b.WriteString("\n#define GT_EMU_CHECKED 1\n")
	fmt.Fprintf(&b, "#define GT_EMU_SHM_SECTION \"gt_emu_shm.c.%s\"\n", s.id)
	b.WriteString("#include \"emu.h\"\n\n")
	for _, k := range kernels {
		fmt.Fprintf(&b, "#define %s gt_emu_c_%s\n", k.Name, k.Name)
	}
	fmt.Fprintf(&b, "namespace gt_emu_c_%s {\n", s.id)
	fmt.Fprintf(&b, "#include %q\n", s.include)
	fmt.Fprintf(&b, "}  // namespace gt_emu_c_%s\n\n", s.id)
	for _, k := range kernels {
		fmt.Fprintf(&b, "extern \"C\" GT_EMU_NOCHECK void gt_emu_ctramp_%s(const uint64_t* a) { ::gt_emu::invoke(&gt_emu_c_%s::%s, a); }\n",
			k.Name, s.id, k.Name)
	}
	return b.Bytes()
}

// sharedLines returns the __shared__ declarations of files (a source and
// the files it includes) as pairs "line", "file:line names", sorted by line:
// __LINE__ names the section of each (emu.h), so a report can go from an
// address to its declaration. Two files may declare at the same line: the
// pair lists both.
func sharedLines(root string, files []string) ([]string, error) {
	byLine := map[int][]string{}
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f] {
			continue
		}
		seen[f] = true
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		rel, err := filepath.Rel(root, f)
		if err != nil {
			return nil, err
		}
		code := StripComments(string(data))
		for _, loc := range sharedRE.FindAllStringIndex(code, -1) {
			if strings.HasPrefix(strings.TrimSpace(code[lineStart(code, loc[0]):loc[0]]), "#") {
				continue // a macro definition: its uses carry their own lines
			}
			line := 1 + strings.Count(code[:loc[0]], "\n")
			decl := code[loc[1]:]
			if semi := strings.IndexAny(decl, ";{"); semi >= 0 {
				decl = decl[:semi]
			}
			decl = alignRE.ReplaceAllString(decl, " ")
			var names []string
			for n := range declaredNames(strings.Join(strings.Fields(decl), " ")) {
				names = append(names, n)
			}
			sort.Strings(names)
			byLine[line] = append(byLine[line], fmt.Sprintf("%s:%d %s", filepath.ToSlash(rel), line, strings.Join(names, ", ")))
		}
	}
	var lines []int
	for l := range byLine {
		lines = append(lines, l)
	}
	sort.Ints(lines)
	var out []string
	for _, l := range lines {
		out = append(out, strconv.Itoa(l), strings.Join(byLine[l], " or "))
	}
	return out, nil
}

var sharedRE = regexp.MustCompile(`\b__shared__\b`)

func registryFile(srcs []source, inputs []Input) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	b.WriteString("#include \"emu.h\"\n\n")
	for _, s := range srcs {
		fmt.Fprintf(&b, "extern \"C\" const gt_emu_kernel %s[];\n", s.table)
	}
	b.WriteString("\nextern \"C\" const gt_emu_kernel* const gt_emu_tables[] = {\n")
	for _, s := range srcs {
		fmt.Fprintf(&b, "    %s,\n", s.table)
	}
	b.WriteString("    nullptr,\n};\n")
	b.WriteString("\n// The files the generated units were made from, path and SHA-256 in turn.\n")
	b.WriteString("extern \"C\" const char* const gt_emu_inputs[] = {\n")
	for _, in := range inputs {
		fmt.Fprintf(&b, "    %q, \"%x\",\n", in.Path, in.Sum)
	}
	b.WriteString("    nullptr,\n};\n")
	return b.Bytes()
}

// ---- scanning ----------------------------------------------------------------

var (
	globalRE = regexp.MustCompile(`__global__`)
	identRE  = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
	defineRE = regexp.MustCompile(`(?m)^[ \t]*#[ \t]*define[ \t]+([A-Za-z_][A-Za-z0-9_]*)`)
	alignRE  = regexp.MustCompile(`__align__\s*\([^)]*\)`)
)

// Scan finds the kernels of one source: `extern "C" __global__ void NAME(`
// followed by a body (declarations without a body are skipped). A
// __global__ function that is not extern "C" is an error: the drivers look
// kernels up by their unmangled name. macros and fileNames are the names a
// static shared array size may use (see fileScopeNames).
func Scan(file, text string, macros, fileNames map[string]bool) ([]Kernel, error) {
	code := StripComments(text)
	var ks []Kernel
	for _, loc := range globalRE.FindAllStringIndex(code, -1) {
		line := 1 + strings.Count(code[:loc[0]], "\n")
		if strings.HasPrefix(strings.TrimSpace(code[lineStart(code, loc[0]):loc[0]]), "#") {
			continue // a #define or #ifdef mentioning __global__
		}
		before := strings.TrimSpace(code[lineStart(code, loc[0]):loc[0]])
		if !strings.HasSuffix(before, `extern "C"`) {
			return nil, fmt.Errorf("%s:%d: __global__ function is not declared as `extern \"C\" __global__ void name(...)`", file, line)
		}
		rest := code[loc[1]:]
		m := regexp.MustCompile(`^\s*void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\(`).FindStringSubmatchIndex(rest)
		if m == nil {
			return nil, fmt.Errorf("%s:%d: expected `__global__ void name(` after extern \"C\"", file, line)
		}
		name := rest[m[2]:m[3]]
		end := matchClose(rest, m[1]-1, '(', ')')
		if end < 0 {
			return nil, fmt.Errorf("%s:%d: unbalanced parentheses in the parameters of %s", file, line, name)
		}
		after := strings.TrimLeft(rest[end+1:], " \t\r\n")
		if strings.HasPrefix(after, ";") {
			continue // a declaration; the definition is elsewhere
		}
		if !strings.HasPrefix(after, "{") {
			return nil, fmt.Errorf("%s:%d: expected the body of kernel %s", file, line, name)
		}
		open := len(rest) - len(after)
		close := matchClose(rest, open, '{', '}')
		if close < 0 {
			return nil, fmt.Errorf("%s:%d: unbalanced braces in kernel %s", file, line, name)
		}
		base := loc[1] // rest starts here in code
		k := Kernel{Name: name, First: 1 + strings.Count(code[:base+open], "\n"), Last: 1 + strings.Count(code[:base+close], "\n")}
		sharedDecls(rest[open+1:close], macros, fileNames, &k)
		ks = append(ks, k)
	}
	return ks, nil
}

func lineStart(s string, i int) int { return strings.LastIndexByte(s[:i], '\n') + 1 }

// matchClose returns the index of the bracket closing the one at open.
func matchClose(s string, open int, o, c byte) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case o:
			depth++
		case c:
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// StripComments blanks // and /* */ comments (keeping newlines, so line
// numbers stay right) and leaves string and character literals alone.
func StripComments(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '"' || b[i] == '\'':
			q := b[i]
			for i++; i < len(b) && b[i] != q && b[i] != '\n'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case b[i] == '/' && i+1 < len(b) && b[i+1] == '/':
			for ; i < len(b) && b[i] != '\n'; i++ {
				b[i] = ' '
			}
		case b[i] == '/' && i+1 < len(b) && b[i+1] == '*':
			for ; i < len(b) && !(b[i] == '*' && i+1 < len(b) && b[i+1] == '/'); i++ {
				if b[i] != '\n' {
					b[i] = ' '
				}
			}
			if i+1 < len(b) {
				b[i], b[i+1] = ' ', ' '
				i++
			}
		}
	}
	return string(b)
}

// keywords may appear in a shared declaration without being file-scope names.
var keywords = map[string]bool{
	"float": true, "double": true, "int": true, "unsigned": true, "signed": true, "long": true,
	"short": true, "char": true, "bool": true, "sizeof": true, "const": true, "struct": true,
	"size_t": true, "int8_t": true, "uint8_t": true, "int16_t": true, "uint16_t": true,
	"int32_t": true, "uint32_t": true, "int64_t": true, "uint64_t": true, "warpSize": true,
}

// sharedDecls collects the kernel body's static __shared__ declarations
// (those at any depth of the body; dynamic ones are GT_DYNAMIC_SHARED) as
// member declarations for a struct whose sizeof is the static shared
// memory, provided every name they use other than the declared ones is a
// keyword, a macro or a file-scope name; a kernel-local constant would not
// compile at file scope, so such a declaration is listed in Unsized.
func sharedDecls(body string, macros, fileNames map[string]bool, k *Kernel) {
	for {
		i := strings.Index(body, "__shared__")
		if i < 0 {
			return
		}
		semi := strings.IndexByte(body[i:], ';')
		if semi < 0 {
			return
		}
		decl := body[i+len("__shared__") : i+semi]
		body = body[i+semi+1:]
		decl = alignRE.ReplaceAllString(decl, " ")
		for _, w := range []string{"volatile", "static"} {
			decl = regexp.MustCompile(`\b`+w+`\b`).ReplaceAllString(decl, " ")
		}
		decl = strings.Join(strings.Fields(decl), " ")
		declared := declaredNames(decl)
		bad := ""
		for _, id := range identRE.FindAllString(decl, -1) {
			if !keywords[id] && !macros[id] && !fileNames[id] && !declared[id] {
				bad = id
				break
			}
		}
		if bad != "" {
			k.Unsized = append(k.Unsized, fmt.Sprintf("`%s` uses %s, which is not a macro or a file-scope name", decl, bad))
			continue
		}
		k.SharedDecls = append(k.SharedDecls, decl)
	}
}

// declaredNames returns the declarator names of "TYPE a[..], *b, c[..]":
// in each top-level comma part, the last identifier before any '['.
func declaredNames(decl string) map[string]bool {
	names := map[string]bool{}
	depth, startPart := 0, 0
	parts := []string{}
	for i := 0; i < len(decl); i++ {
		switch decl[i] {
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, decl[startPart:i])
				startPart = i + 1
			}
		}
	}
	parts = append(parts, decl[startPart:])
	for _, p := range parts {
		if j := strings.IndexByte(p, '['); j >= 0 {
			p = p[:j]
		}
		ids := identRE.FindAllString(p, -1)
		if len(ids) > 0 {
			names[ids[len(ids)-1]] = true
		}
	}
	return names
}

// fileScopeNames returns the macros defined in the source and in the
// headers of kernels/, and the identifiers that appear outside any function
// body or parameter list (types, constants, enumerators) in them.
func fileScopeNames(root, text string) (macros, names map[string]bool) {
	macros, names = map[string]bool{}, map[string]bool{}
	texts := []string{text}
	for _, pat := range []string{"*.cuh", "*.h"} {
		paths, _ := filepath.Glob(filepath.Join(root, "kernels", pat))
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				texts = append(texts, string(data))
			}
		}
	}
	for _, t := range texts {
		t = StripComments(t)
		for _, m := range defineRE.FindAllStringSubmatch(t, -1) {
			macros[m[1]] = true
		}
		// Braces of namespaces, enums and extern "C" blocks stay at file
		// scope; every other brace opens a body.
		var stack []bool // true: a transparent brace
		depth, parens := 0, 0
		for i := 0; i < len(t); i++ {
			c := t[i]
			switch {
			case c == '{':
				head := t[lineStart(t, i):i]
				if j := strings.LastIndexAny(t[:i], ";}"); j >= 0 && j+1 < i {
					head = t[j+1 : i]
				}
				transparent := regexp.MustCompile(`\b(namespace|enum)\b|extern\s*"C"\s*$`).MatchString(head)
				stack = append(stack, transparent)
				if !transparent {
					depth++
				}
			case c == '}':
				if n := len(stack); n > 0 {
					if !stack[n-1] {
						depth--
					}
					stack = stack[:n-1]
				}
			case c == '(':
				parens++
			case c == ')':
				parens--
			case depth == 0 && parens == 0 && (c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'):
				j := i
				for j < len(t) && (t[j] == '_' || t[j] >= 'A' && t[j] <= 'Z' || t[j] >= 'a' && t[j] <= 'z' || t[j] >= '0' && t[j] <= '9') {
					j++
				}
				names[t[i:j]] = true
				i = j - 1
			}
		}
	}
	return macros, names
}

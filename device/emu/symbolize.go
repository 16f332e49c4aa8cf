//go:build cgo

package emu

/*
#include "bridge.h"
*/
import "C"

import (
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// describe turns a launch report of kernel k into its message: the markers
// 0x1f '0' and 0x1f '1' become " at FILE:LINE" for the code addresses pcs[0]
// and pcs[1] (nothing where they cannot be named: test binaries are
// stripped unless built with -ldflags=-s=false), 0x1f '2' the static
// __shared__ declaration at addr and the offset into it.
func describe(msg string, pcs [2]uint64, addr uint64, k kernelInfo, checked bool) string {
	if !strings.Contains(msg, "\x1f") {
		return msg
	}
	s := symbols()
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		if msg[i] != 0x1f || i+1 == len(msg) {
			b.WriteByte(msg[i])
			continue
		}
		i++
		switch msg[i] {
		case '0', '1':
			if loc := s.line(pcs[msg[i]-'0']); loc != "" {
				b.WriteString(" at " + loc)
			}
		case '2':
			b.WriteString(sharedName(k, checked, addr))
		}
	}
	return b.String()
}

// symbolizer names code and data addresses of the running executable from
// its ELF symbol table and DWARF line tables (read once, at the first
// report).
type symbolizer struct {
	bias  uint64 // run-time address minus link-time address
	funcs []elf.Symbol
	objs  []elf.Symbol
	dw    *dwarf.Data
	root  string // module root, to shorten file names ("" if unknown)
}

var symbols = sync.OnceValue(func() *symbolizer {
	s := &symbolizer{root: moduleRoot()}
	exe, err := os.Executable()
	if err != nil {
		return s
	}
	f, err := elf.Open(exe)
	if err != nil {
		return s
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return s
	}
	anchor := uint64(C.gt_emu_anchor())
	for _, sym := range syms {
		switch elf.ST_TYPE(sym.Info) {
		case elf.STT_FUNC:
			if sym.Name == "gt_emu_launch" {
				s.bias = anchor - sym.Value
			}
			s.funcs = append(s.funcs, sym)
		case elf.STT_OBJECT:
			s.objs = append(s.objs, sym)
		}
	}
	for _, l := range [][]elf.Symbol{s.funcs, s.objs} {
		sort.Slice(l, func(i, j int) bool { return l[i].Value < l[j].Value })
	}
	if dw, err := f.DWARF(); err == nil {
		s.dw = dw
	}
	return s
})

// containing returns the symbol of l (sorted by address) that holds
// address a, or nil.
func containing(l []elf.Symbol, a uint64) *elf.Symbol {
	i := sort.Search(len(l), func(i int) bool { return l[i].Value > a }) - 1
	for ; i >= 0 && a-l[i].Value < 1<<20; i-- {
		if a < l[i].Value+l[i].Size {
			return &l[i]
		}
	}
	return nil
}

// sharedName names the static __shared__ variable at run-time address a
// of kernel k's unit: "sh + 8 (kernels/reduce.cu:46)", from the section
// holding a and the unit's declarations table.
func sharedName(k kernelInfo, checked bool, a uint64) string {
	secs, _ := unitSections(k.unit, checked)
	for _, sec := range secs {
		if sec.start <= a && a < sec.start+sec.size {
			decl := ""
			for j := 0; ; j += 2 {
				l := C.gt_emu_kernel_decl(C.int(k.index), C.int(j))
				if l == nil {
					break
				}
				if C.GoString(l) == strconv.Itoa(sec.line) {
					decl = C.GoString(C.gt_emu_kernel_decl(C.int(k.index), C.int(j+1)))
					break
				}
			}
			if decl == "" {
				return fmt.Sprintf("the variable declared at line %d of the kernel's source + %d", sec.line, a-sec.start)
			}
			// decl is "file:line names".
			loc, names, _ := strings.Cut(decl, " ")
			return fmt.Sprintf("%s + %d (%s)", names, a-sec.start, loc)
		}
	}
	return fmt.Sprintf("memory at %#x", a)
}

// demangleLocal turns the mangled name of a function's static variable
// (_ZZ<function>E<name>[_<n>]) into "function's name"; other names are
// returned as they are. The checked units' kernel and namespace prefixes
// (gt_emu_c_) are dropped.
func demangleLocal(m string) string {
	if !strings.HasPrefix(m, "_ZZ") {
		return m
	}
	rest := m[3:]
	parts := []string{}
	// <function>: a <len><id> or N<len><id>...E; parameters follow up to
	// the E that precedes the variable's <len><id>.
	nested := strings.HasPrefix(rest, "N")
	if nested {
		rest = rest[1:]
	}
	for len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		n, _ := strconv.Atoi(rest[:j])
		if n <= 0 || j+n > len(rest) {
			return m
		}
		parts = append(parts, rest[j:j+n])
		rest = rest[j+n:]
		if !nested {
			break
		}
	}
	if len(parts) == 0 {
		return m
	}
	e := strings.LastIndex(rest, "E")
	if e < 0 {
		return m
	}
	v := rest[e+1:]
	j := 0
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(v[:j])
	if err != nil || j+n > len(v) {
		return m
	}
	fn := strings.TrimPrefix(parts[len(parts)-1], "gt_emu_c_")
	return fn + "'s " + v[j:j+n]
}

// line names the source line of the code at run-time return address pc:
// "kernels/reduce.cu:27", and where that line is inlined into another
// function, the chain of call sites ("kernels/gputrain.cuh:71 in gt_sts4,
// called at kernels/gemm.cu:117").
func (s *symbolizer) line(pc uint64) string {
	if pc == 0 || s.dw == nil {
		return ""
	}
	a := pc - 1 - s.bias // inside the call instruction
	r := s.dw.Reader()
	for {
		cu, err := r.Next()
		if err != nil || cu == nil {
			return ""
		}
		if cu.Tag != dwarf.TagCompileUnit {
			r.SkipChildren()
			continue
		}
		ranges, err := s.dw.Ranges(cu)
		if err != nil || !inRanges(ranges, a) {
			r.SkipChildren()
			continue
		}
		lr, err := s.dw.LineReader(cu)
		if err != nil || lr == nil {
			return ""
		}
		var le dwarf.LineEntry
		if err := lr.SeekPC(a, &le); err != nil {
			return ""
		}
		compDir, _ := cu.Val(dwarf.AttrCompDir).(string)
		out := fmt.Sprintf("%s:%d", s.short(compDir, le.File.Name), le.Line)
		// The inlined calls that contain a, outermost first.
		chain := s.inlined(r, a, lr.Files(), compDir)
		for i := len(chain) - 1; i >= 0; i-- {
			out += chain[i]
		}
		return out
	}
}

func inRanges(rs [][2]uint64, a uint64) bool {
	for _, r := range rs {
		if r[0] <= a && a < r[1] {
			return true
		}
	}
	return false
}

// inlined walks the children of the compile unit r is positioned in and
// returns, innermost first, " in F, called at FILE:LINE" for every inlined
// call that contains a.
func (s *symbolizer) inlined(r *dwarf.Reader, a uint64, files []*dwarf.LineFile, compDir string) []string {
	var chain []string
	depth := 1 // inside the compile unit
	for depth > 0 {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		if e.Tag == 0 {
			depth--
			continue
		}
		contains := false
		if e.Tag == dwarf.TagSubprogram || e.Tag == dwarf.TagInlinedSubroutine || e.Tag == dwarf.TagLexDwarfBlock {
			if rs, err := s.dw.Ranges(e); err == nil {
				contains = inRanges(rs, a)
			}
		}
		if e.Tag == dwarf.TagInlinedSubroutine && contains {
			name := s.originName(e)
			file, _ := e.Val(dwarf.AttrCallFile).(int64)
			line, _ := e.Val(dwarf.AttrCallLine).(int64)
			site := ""
			if file > 0 && int(file) < len(files) && files[file] != nil {
				site = fmt.Sprintf("%s:%d", s.short(compDir, files[file].Name), line)
			}
			chain = append([]string{fmt.Sprintf(" in %s, called at %s", name, site)}, chain...)
		}
		if e.Children {
			if contains || e.Tag == dwarf.TagNamespace || e.Tag == dwarf.TagClassType || e.Tag == dwarf.TagStructType {
				depth++
			} else {
				r.SkipChildren()
			}
		}
	}
	return chain
}

func (s *symbolizer) originName(e *dwarf.Entry) string {
	for i := 0; i < 4 && e != nil; i++ {
		if n, ok := e.Val(dwarf.AttrName).(string); ok {
			return strings.TrimPrefix(n, "gt_emu_c_")
		}
		off, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset)
		if !ok {
			if off, ok = e.Val(dwarf.AttrSpecification).(dwarf.Offset); !ok {
				break
			}
		}
		r := s.dw.Reader()
		r.Seek(off)
		e, _ = r.Next()
	}
	return "?"
}

// short makes a file name (relative to the compile unit's directory dir)
// relative to the module root where it lies in it.
func (s *symbolizer) short(dir, name string) string {
	if !filepath.IsAbs(name) && dir != "" {
		name = filepath.Join(dir, name)
	}
	name = filepath.Clean(name)
	if s.root != "" {
		if rel, err := filepath.Rel(s.root, name); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.ToSlash(rel)
		}
	}
	return name
}

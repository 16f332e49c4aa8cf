//go:build cgo

package emu

/*
#include "bridge.h"
*/
import "C"

import (
	"debug/elf"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// shmSection is the ELF section of one static __shared__ declaration of a
// unit (emu.h names it gt_emu_shm.<p|c>.<unit>.<line>), at its run-time
// address.
type shmSection struct {
	start, size uint64
	line        int
}

// hasDWARF reports whether the running executable has DWARF line tables
// (go test strips its binaries unless run with -ldflags='-s=false -w=false'):
// only then are code addresses worth recording.
var hasDWARF = sync.OnceValue(func() bool {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Section(".debug_line") != nil || f.Section(".zdebug_line") != nil
})

// shmSections maps "<p|c>.<unit>" to the unit's sections, sorted by
// address, read once from the running executable's section headers (which
// stripping keeps). An error means the executable could not be read or the
// sections of a unit are not contiguous; plain launches then skip the
// poisoning of static shared memory, checked launches fail.
var shmSections = sync.OnceValues(func() (map[string][]shmSection, error) {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		exe, err2 := os.Executable()
		if err2 != nil {
			return nil, fmt.Errorf("emu: reading the executable's sections: %v", err)
		}
		if f, err = elf.Open(exe); err != nil {
			return nil, fmt.Errorf("emu: reading the executable's sections: %v", err)
		}
	}
	defer f.Close()
	bias := uint64(C.gt_emu_load_bias())
	return unitsOf(f.Sections, bias)
})

// unitsOf groups the gt_emu_shm sections of secs by unit and checks that
// no other allocated section lies between the first and the last of a
// unit, since a checked launch treats that span as the unit's shared
// memory.
func unitsOf(secs []*elf.Section, bias uint64) (map[string][]shmSection, error) {
	type placed struct {
		unit string
		s    shmSection
		name string
	}
	var all []placed
	for _, sec := range secs {
		if sec.Flags&elf.SHF_ALLOC == 0 || sec.Size == 0 {
			continue
		}
		p := placed{name: sec.Name, s: shmSection{start: sec.Addr + bias, size: sec.Size}}
		if rest, ok := strings.CutPrefix(sec.Name, "gt_emu_shm."); ok {
			i := strings.LastIndexByte(rest, '.')
			line, err := strconv.Atoi(rest[i+1:])
			if i < 0 || err != nil {
				return nil, fmt.Errorf("emu: section %s: want gt_emu_shm.<p|c>.<unit>.<line>", sec.Name)
			}
			p.unit, p.s.line = rest[:i], line
		}
		all = append(all, p)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].s.start < all[j].s.start })
	m := map[string][]shmSection{}
	last := map[string]int{} // unit -> index in all of its latest section
	for i, p := range all {
		if p.unit == "" {
			continue
		}
		if j, ok := last[p.unit]; ok && j != i-1 {
			return nil, fmt.Errorf("emu: section %s lies between the static __shared__ sections of unit %s", all[j+1].name, p.unit)
		}
		last[p.unit] = i
		m[p.unit] = append(m[p.unit], p.s)
	}
	return m, nil
}

// unitSections returns the sections of a kernel's unit, plain or checked.
func unitSections(unit string, checked bool) ([]shmSection, error) {
	m, err := shmSections()
	if err != nil {
		return nil, err
	}
	v := "p."
	if checked {
		v = "c."
	}
	return m[v+unit], nil
}

// shmRanges is, per kernel and build, the sections a block start poisons:
// those declared in the kernel's body (by line) and those declared outside
// every kernel's body of the unit (helpers, which any kernel may call).
var shmRanges sync.Map // key {index, checked} -> launchShm

type launchShm struct {
	poison []C.gt_emu_range // with one more element (zero) past the end
	unit   C.gt_emu_range   // the span of the unit's sections
}

type shmKey struct {
	index   int
	checked bool
}

func launchRanges(k kernelInfo, checked bool) (launchShm, error) {
	key := shmKey{k.index, checked}
	if r, ok := shmRanges.Load(key); ok {
		return r.(launchShm), nil
	}
	secs, err := unitSections(k.unit, checked)
	if err != nil {
		return launchShm{poison: make([]C.gt_emu_range, 1)}, err
	}
	inKernel := func(line int, o kernelInfo) bool { return o.body[0] <= line && line <= o.body[1] }
	r := make([]C.gt_emu_range, 0, len(secs)+1)
	for _, s := range secs {
		mine := inKernel(s.line, k)
		if !mine {
			mine = true
			for _, o := range kernels() {
				if o.unit == k.unit && inKernel(s.line, o) {
					mine = false
					break
				}
			}
		}
		if mine {
			r = append(r, C.gt_emu_range{start: C.uint64_t(s.start), size: C.uint64_t(s.size)})
		}
	}
	ls := launchShm{poison: append(r, C.gt_emu_range{})}
	if n := len(secs); n > 0 {
		ls.unit = C.gt_emu_range{start: C.uint64_t(secs[0].start), size: C.uint64_t(secs[n-1].start + secs[n-1].size - secs[0].start)}
	}
	shmRanges.Store(key, ls)
	return ls, nil
}

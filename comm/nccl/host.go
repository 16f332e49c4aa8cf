//go:build cgo

package nccl

/*
#include <stdlib.h>
#include <string.h>

static void gt_host_fold(size_t dstp, size_t slotsp, long long n, long long nslots, long long stride) {
	float *dst = (float *)dstp;
	const float *slots = (const float *)slotsp;
	for (long long i = 0; i < n; i++) {
		float s = slots[i];
		for (long long r = 1; r < nslots; r++) {
			s += slots[r * stride + i];
		}
		dst[i] = s;
	}
}
static void gt_host_copy(size_t dst, size_t src, size_t n) { memmove((void *)dst, (const void *)src, n); }
static size_t gt_host_alloc(size_t n) { return (size_t)malloc(n ? n : 1); }
static void gt_host_free(size_t p) { free((void *)p); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// hostGPU is a gpu on host memory (malloc'd, addressed by uintptr like
// device memory): the stand-in for cudaGPU with the fake NCCL of the tests,
// which likewise treats "device" pointers as host pointers.
type hostGPU struct{ live map[uintptr]int }

func newHostGPU() *hostGPU { return &hostGPU{live: map[uintptr]int{}} }

func (h *hostGPU) name() string           { return "host memory" }
func (h *hostGPU) enter() (func(), error) { return func() {}, nil }
func (h *hostGPU) stream() uintptr        { return 0 }
func (h *hostGPU) sync() error            { return nil }

func (h *hostGPU) alloc(bytes int) (uintptr, error) {
	p := uintptr(C.gt_host_alloc(C.size_t(bytes)))
	if p == 0 {
		return 0, fmt.Errorf("malloc of %d bytes failed", bytes)
	}
	h.live[p] = bytes
	return p, nil
}

func (h *hostGPU) free(p uintptr) error {
	if _, ok := h.live[p]; !ok {
		return fmt.Errorf("free of %#x, which is not allocated", p)
	}
	delete(h.live, p)
	C.gt_host_free(C.size_t(p))
	return nil
}

func (h *hostGPU) copy(dst, src uintptr, bytes int) error {
	C.gt_host_copy(C.size_t(dst), C.size_t(src), C.size_t(bytes))
	return nil
}

func (h *hostGPU) upload(dst uintptr, src []byte) error {
	if len(src) > 0 {
		C.gt_host_copy(C.size_t(dst), C.size_t(uintptr(unsafe.Pointer(&src[0]))), C.size_t(len(src)))
	}
	return nil
}

func (h *hostGPU) download(dst []byte, src uintptr) error {
	if len(dst) > 0 {
		C.gt_host_copy(C.size_t(uintptr(unsafe.Pointer(&dst[0]))), C.size_t(src), C.size_t(len(dst)))
	}
	return nil
}

func (h *hostGPU) sumSlots(dst, slots uintptr, n, nslots, stride int) error {
	C.gt_host_fold(C.size_t(dst), C.size_t(slots), C.longlong(n), C.longlong(nslots), C.longlong(stride))
	return nil
}

func (h *hostGPU) close() error {
	if len(h.live) > 0 {
		return fmt.Errorf("%d host buffers still allocated", len(h.live))
	}
	return nil
}

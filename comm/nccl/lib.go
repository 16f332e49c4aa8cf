//go:build cgo

package nccl

/*
#include <dlfcn.h>
#include <stdlib.h>
#include <stddef.h>

// The subset of nccl.h this package calls, declared here so that building
// needs no NCCL headers (ABI stable since NCCL 2.0).
typedef int ncclResult_t;
typedef void *ncclComm_t;
typedef struct { char internal[128]; } ncclUniqueId;
typedef void *cudaStream_t;

typedef struct {
	void *handle;
	ncclResult_t (*getVersion)(int *);
	ncclResult_t (*getUniqueId)(ncclUniqueId *);
	ncclResult_t (*commInitRank)(ncclComm_t *, int, ncclUniqueId, int);
	ncclResult_t (*commDestroy)(ncclComm_t);
	ncclResult_t (*commAbort)(ncclComm_t);
	const char *(*getErrorString)(ncclResult_t);
	const char *(*getLastError)(ncclComm_t); // NCCL >= 2.13; may be NULL
	ncclResult_t (*groupStart)(void);
	ncclResult_t (*groupEnd)(void);
	ncclResult_t (*send)(const void *, size_t, int, int, ncclComm_t, cudaStream_t);
	ncclResult_t (*recv)(void *, size_t, int, int, ncclComm_t, cudaStream_t);
	ncclResult_t (*bcast)(const void *, void *, size_t, int, int, ncclComm_t, cudaStream_t);
} gt_nccl;

// gt_nccl_open fills l from the library at path; on failure it returns the
// name of what is missing (or dlerror's message) in *what.
static int gt_nccl_open(const char *path, gt_nccl *l, const char **what) {
	l->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (l->handle == NULL) {
		*what = dlerror();
		return 1;
	}
#define SYM(field, name) \
	*(void **)(&l->field) = dlsym(l->handle, name); \
	if (l->field == NULL) { *what = name; dlclose(l->handle); l->handle = NULL; return 2; }
	SYM(getVersion, "ncclGetVersion")
	SYM(getUniqueId, "ncclGetUniqueId")
	SYM(commInitRank, "ncclCommInitRank")
	SYM(commDestroy, "ncclCommDestroy")
	SYM(commAbort, "ncclCommAbort")
	SYM(getErrorString, "ncclGetErrorString")
	SYM(groupStart, "ncclGroupStart")
	SYM(groupEnd, "ncclGroupEnd")
	SYM(send, "ncclSend")
	SYM(recv, "ncclRecv")
	SYM(bcast, "ncclBroadcast")
#undef SYM
	*(void **)(&l->getLastError) = dlsym(l->handle, "ncclGetLastError");
	return 0;
}

static ncclResult_t gt_nccl_version(gt_nccl *l, int *v) { return l->getVersion(v); }
static ncclResult_t gt_nccl_unique_id(gt_nccl *l, void *id) { return l->getUniqueId((ncclUniqueId *)id); }
static ncclResult_t gt_nccl_init_rank(gt_nccl *l, ncclComm_t *c, int n, void *id, int rank) {
	return l->commInitRank(c, n, *(ncclUniqueId *)id, rank);
}
static ncclResult_t gt_nccl_destroy(gt_nccl *l, ncclComm_t c) { return l->commDestroy(c); }
static ncclResult_t gt_nccl_abort(gt_nccl *l, ncclComm_t c) { return l->commAbort(c); }
static const char *gt_nccl_error_string(gt_nccl *l, ncclResult_t r) { return l->getErrorString(r); }
static const char *gt_nccl_last_error(gt_nccl *l, ncclComm_t c) { return l->getLastError ? l->getLastError(c) : NULL; }
static ncclResult_t gt_nccl_group_start(gt_nccl *l) { return l->groupStart(); }
static ncclResult_t gt_nccl_group_end(gt_nccl *l) { return l->groupEnd(); }
static ncclResult_t gt_nccl_send(gt_nccl *l, size_t buf, size_t count, int dtype, int peer, ncclComm_t c, size_t stream) {
	return l->send((const void *)buf, count, dtype, peer, c, (cudaStream_t)stream);
}
static ncclResult_t gt_nccl_recv(gt_nccl *l, size_t buf, size_t count, int dtype, int peer, ncclComm_t c, size_t stream) {
	return l->recv((void *)buf, count, dtype, peer, c, (cudaStream_t)stream);
}
static ncclResult_t gt_nccl_bcast(gt_nccl *l, size_t src, size_t dst, size_t count, int dtype, int root, ncclComm_t c, size_t stream) {
	return l->bcast((const void *)src, (void *)dst, count, dtype, root, c, (cudaStream_t)stream);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// ncclFloat32 and ncclUint8 are ncclDataType_t values (nccl.h).
const (
	ncclUint8   = 1
	ncclFloat32 = 7
)

// Library is an opened libnccl.so.2.
type Library struct {
	path    string
	version int // NCCL_VERSION_CODE: major*10000 + minor*100 + patch (2.9 and newer)
	c       *C.gt_nccl
}

// OpenPath opens the NCCL library at path (a file, or a directory holding
// libnccl.so.2) and checks it has every function this package calls.
func OpenPath(path string) (*Library, error) {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	l := (*C.gt_nccl)(C.calloc(1, C.size_t(unsafe.Sizeof(C.gt_nccl{}))))
	var what *C.char
	switch C.gt_nccl_open(p, l, &what) {
	case 0:
	case 1:
		C.free(unsafe.Pointer(l))
		return nil, fmt.Errorf("cannot load %s: %s", path, C.GoString(what))
	default:
		C.free(unsafe.Pointer(l))
		return nil, fmt.Errorf("%s is not a usable NCCL: it has no %s (NCCL >= %s needed)", path, C.GoString(what), minVersionString)
	}
	lib := &Library{path: path, c: l}
	var v C.int
	if rc := C.gt_nccl_version(l, &v); rc != 0 {
		return nil, fmt.Errorf("%s: ncclGetVersion: %s", path, lib.errorString(rc))
	}
	lib.version = int(v)
	if lib.version < minVersion {
		return nil, fmt.Errorf("%s is NCCL %s; gputrain needs NCCL >= %s (point-to-point send/recv)", path, lib.Version(), minVersionString)
	}
	return lib, nil
}

func (l *Library) errorString(rc C.ncclResult_t) string {
	s := C.gt_nccl_error_string(l.c, rc)
	if s == nil {
		return fmt.Sprintf("NCCL error %d", int(rc))
	}
	return fmt.Sprintf("%s (NCCL error %d)", C.GoString(s), int(rc))
}

// uniqueID draws the id rank 0 broadcasts to bootstrap a communicator.
func (l *Library) uniqueID() (ID, error) {
	var id ID
	if rc := C.gt_nccl_unique_id(l.c, unsafe.Pointer(&id[0])); rc != 0 {
		return id, fmt.Errorf("ncclGetUniqueId: %s", l.errorString(rc))
	}
	return id, nil
}

// handle is an ncclComm_t.
type handle struct {
	l *Library
	c C.ncclComm_t
}

// initRank joins the communicator id as rank of size (ncclCommInitRank:
// blocks until every rank has joined). The GPU is the CUDA context current
// on the calling thread.
func (l *Library) initRank(id ID, rank, size int) (*handle, error) {
	h := &handle{l: l}
	if rc := C.gt_nccl_init_rank(l.c, &h.c, C.int(size), unsafe.Pointer(&id[0]), C.int(rank)); rc != 0 {
		return nil, fmt.Errorf("ncclCommInitRank (rank %d of %d): %s", rank, size, l.errorString(rc))
	}
	return h, nil
}

func (h *handle) err(op string, rc C.ncclResult_t) error {
	if rc == 0 {
		return nil
	}
	msg := h.l.errorString(rc)
	if s := C.gt_nccl_last_error(h.l.c, h.c); s != nil && C.GoString(s) != "" {
		msg += ": " + C.GoString(s)
	}
	return fmt.Errorf("%s: %s", op, msg)
}

func (h *handle) groupStart() error { return h.err("ncclGroupStart", C.gt_nccl_group_start(h.l.c)) }
func (h *handle) groupEnd() error   { return h.err("ncclGroupEnd", C.gt_nccl_group_end(h.l.c)) }

func (h *handle) send(buf uintptr, floats, peer int, stream uintptr) error {
	return h.err(fmt.Sprintf("ncclSend of %d floats to rank %d", floats, peer),
		C.gt_nccl_send(h.l.c, C.size_t(buf), C.size_t(floats), ncclFloat32, C.int(peer), h.c, C.size_t(stream)))
}

func (h *handle) recv(buf uintptr, floats, peer int, stream uintptr) error {
	return h.err(fmt.Sprintf("ncclRecv of %d floats from rank %d", floats, peer),
		C.gt_nccl_recv(h.l.c, C.size_t(buf), C.size_t(floats), ncclFloat32, C.int(peer), h.c, C.size_t(stream)))
}

func (h *handle) broadcast(src, dst uintptr, bytes, root int, stream uintptr) error {
	return h.err(fmt.Sprintf("ncclBroadcast of %d bytes from rank %d", bytes, root),
		C.gt_nccl_bcast(h.l.c, C.size_t(src), C.size_t(dst), C.size_t(bytes), ncclUint8, C.int(root), h.c, C.size_t(stream)))
}

func (h *handle) destroy() error { return h.err("ncclCommDestroy", C.gt_nccl_destroy(h.l.c, h.c)) }
func (h *handle) abort() error   { return h.err("ncclCommAbort", C.gt_nccl_abort(h.l.c, h.c)) }

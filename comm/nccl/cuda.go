//go:build cgo

package nccl

/*
#include <dlfcn.h>
#include <stdlib.h>
#include <stddef.h>

// The CUDA driver API calls this package makes, declared here and bound
// with dlopen so that nothing links libcuda (cuda.h is not needed either).
typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUmodule;
typedef void *CUfunction;
typedef void *CUstream;
typedef unsigned long long CUdeviceptr;

typedef struct {
	void *handle;
	CUresult (*init)(unsigned int);
	CUresult (*deviceGetCount)(int *);
	CUresult (*deviceGet)(CUdevice *, int);
	CUresult (*primaryRetain)(CUcontext *, CUdevice);
	CUresult (*primaryRelease)(CUdevice);
	CUresult (*ctxSetCurrent)(CUcontext);
	CUresult (*memAlloc)(CUdeviceptr *, size_t);
	CUresult (*memFree)(CUdeviceptr);
	CUresult (*memcpyDtoDAsync)(CUdeviceptr, CUdeviceptr, size_t, CUstream);
	CUresult (*memcpyHtoD)(CUdeviceptr, const void *, size_t);
	CUresult (*memcpyDtoH)(void *, CUdeviceptr, size_t);
	CUresult (*moduleLoadData)(CUmodule *, const void *);
	CUresult (*moduleGetFunction)(CUfunction *, CUmodule, const char *);
	CUresult (*launchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, void **);
	CUresult (*streamSynchronize)(CUstream);
	CUresult (*getErrorString)(CUresult, const char **);
} gt_cuda;

static int gt_cuda_open(gt_cuda *c, const char **what) {
	c->handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (c->handle == NULL) {
		*what = dlerror();
		return 1;
	}
#define SYM(field, name) \
	*(void **)(&c->field) = dlsym(c->handle, name); \
	if (c->field == NULL) { *what = name; return 2; }
	SYM(init, "cuInit")
	SYM(deviceGetCount, "cuDeviceGetCount")
	SYM(deviceGet, "cuDeviceGet")
	SYM(primaryRetain, "cuDevicePrimaryCtxRetain")
	SYM(primaryRelease, "cuDevicePrimaryCtxRelease_v2")
	SYM(ctxSetCurrent, "cuCtxSetCurrent")
	SYM(memAlloc, "cuMemAlloc_v2")
	SYM(memFree, "cuMemFree_v2")
	SYM(memcpyDtoDAsync, "cuMemcpyDtoDAsync_v2")
	SYM(memcpyHtoD, "cuMemcpyHtoD_v2")
	SYM(memcpyDtoH, "cuMemcpyDtoH_v2")
	SYM(moduleLoadData, "cuModuleLoadData")
	SYM(moduleGetFunction, "cuModuleGetFunction")
	SYM(launchKernel, "cuLaunchKernel")
	SYM(streamSynchronize, "cuStreamSynchronize")
	SYM(getErrorString, "cuGetErrorString")
#undef SYM
	return 0;
}

static const char *gt_cu_error(gt_cuda *c, CUresult r) {
	const char *s = NULL;
	if (c->getErrorString(r, &s) != 0 || s == NULL) return "unknown CUDA error";
	return s;
}
static CUresult gt_cu_init(gt_cuda *c) { return c->init(0); }
static CUresult gt_cu_count(gt_cuda *c, int *n) { return c->deviceGetCount(n); }
static CUresult gt_cu_primary(gt_cuda *c, int ordinal, CUdevice *dev, CUcontext *ctx) {
	CUresult r = c->deviceGet(dev, ordinal);
	if (r != 0) return r;
	return c->primaryRetain(ctx, *dev);
}
static CUresult gt_cu_release(gt_cuda *c, CUdevice dev) { return c->primaryRelease(dev); }
static CUresult gt_cu_set_current(gt_cuda *c, CUcontext ctx) { return c->ctxSetCurrent(ctx); }
static CUresult gt_cu_alloc(gt_cuda *c, CUdeviceptr *p, size_t n) { return c->memAlloc(p, n); }
static CUresult gt_cu_free(gt_cuda *c, CUdeviceptr p) { return c->memFree(p); }
static CUresult gt_cu_copy(gt_cuda *c, CUdeviceptr dst, CUdeviceptr src, size_t n) { return c->memcpyDtoDAsync(dst, src, n, NULL); }
static CUresult gt_cu_upload(gt_cuda *c, CUdeviceptr dst, const void *src, size_t n) { return c->memcpyHtoD(dst, src, n); }
static CUresult gt_cu_download(gt_cuda *c, void *dst, CUdeviceptr src, size_t n) { return c->memcpyDtoH(dst, src, n); }
static CUresult gt_cu_load(gt_cuda *c, const char *ptx, const char *name, CUmodule *mod, CUfunction *fn) {
	CUresult r = c->moduleLoadData(mod, ptx);
	if (r != 0) return r;
	return c->moduleGetFunction(fn, *mod, name);
}
static CUresult gt_cu_sum_slots(gt_cuda *c, CUfunction fn, CUdeviceptr dst, CUdeviceptr slots, long long n, long long nslots, long long stride, unsigned grid) {
	void *args[] = {&dst, &slots, &n, &nslots, &stride};
	return c->launchKernel(fn, grid, 1, 1, 256, 1, 1, 0, NULL, args, NULL);
}
static CUresult gt_cu_sync(gt_cuda *c) { return c->streamSynchronize(NULL); }
*/
import "C"

import (
	_ "embed"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

//go:generate nvcc -ptx -arch=compute_70 -o sum.ptx sum.cu

// sumPTX is sum.cu compiled to PTX for compute_70 (the driver JIT-compiles
// it for the GPU at hand).
//
//go:embed sum.ptx
var sumPTX string

var (
	cudaOnce sync.Once
	cudaLib  *C.gt_cuda
	cudaErr  error
)

// loadCUDA opens libcuda.so.1 once per process.
func loadCUDA() (*C.gt_cuda, error) {
	cudaOnce.Do(func() {
		c := (*C.gt_cuda)(C.calloc(1, C.size_t(unsafe.Sizeof(C.gt_cuda{}))))
		var what *C.char
		switch C.gt_cuda_open(c, &what) {
		case 0:
		case 1:
			cudaErr = fmt.Errorf("no CUDA driver (libcuda.so.1: %s): NCCL needs an NVIDIA GPU and its driver", C.GoString(what))
			return
		default:
			cudaErr = fmt.Errorf("libcuda.so.1 has no %s: the driver is too old", C.GoString(what))
			return
		}
		if rc := C.gt_cu_init(c); rc != 0 {
			cudaErr = fmt.Errorf("cuInit: %s (CUDA error %d): no usable GPU", C.GoString(C.gt_cu_error(c, rc)), int(rc))
			return
		}
		cudaLib = c
	})
	return cudaLib, cudaErr
}

// cudaGPU is one GPU through the driver API, on its primary context (the
// one device/cuda, the CUDA runtime inside NCCL and PyTorch all share) and
// the legacy default stream, which orders with device/cuda's blocking
// stream.
type cudaGPU struct {
	c       *C.gt_cuda
	ordinal int
	dev     C.CUdevice
	ctx     C.CUcontext
	mod     C.CUmodule
	fn      C.CUfunction
}

func (g *cudaGPU) check(op string, rc C.CUresult) error {
	if rc == 0 {
		return nil
	}
	return fmt.Errorf("GPU %d: %s: %s (CUDA error %d)", g.ordinal, op, C.GoString(C.gt_cu_error(g.c, rc)), int(rc))
}

// openGPU retains the primary context of GPU ordinal and loads the fold
// kernel.
func openGPU(ordinal int) (*cudaGPU, error) {
	c, err := loadCUDA()
	if err != nil {
		return nil, err
	}
	var n C.int
	if rc := C.gt_cu_count(c, &n); rc != 0 {
		return nil, fmt.Errorf("cuDeviceGetCount: %s", C.GoString(C.gt_cu_error(c, rc)))
	}
	if ordinal < 0 || ordinal >= int(n) {
		return nil, fmt.Errorf("GPU %d does not exist (%d visible)", ordinal, int(n))
	}
	g := &cudaGPU{c: c, ordinal: ordinal}
	if err := g.check("retaining the primary context", C.gt_cu_primary(c, C.int(ordinal), &g.dev, &g.ctx)); err != nil {
		return nil, err
	}
	leave, err := g.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	ptx := C.CString(sumPTX)
	defer C.free(unsafe.Pointer(ptx))
	name := C.CString("gt_comm_sum_slots")
	defer C.free(unsafe.Pointer(name))
	if err := g.check("loading gt_comm_sum_slots (sum.ptx)", C.gt_cu_load(c, ptx, name, &g.mod, &g.fn)); err != nil {
		C.gt_cu_release(c, g.dev)
		return nil, err
	}
	return g, nil
}

func (g *cudaGPU) name() string { return fmt.Sprintf("GPU %d", g.ordinal) }

func (g *cudaGPU) enter() (func(), error) {
	runtime.LockOSThread()
	if err := g.check("cuCtxSetCurrent", C.gt_cu_set_current(g.c, g.ctx)); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	return runtime.UnlockOSThread, nil
}

func (g *cudaGPU) alloc(bytes int) (uintptr, error) {
	var p C.CUdeviceptr
	if err := g.check(fmt.Sprintf("cuMemAlloc of %d bytes", bytes), C.gt_cu_alloc(g.c, &p, C.size_t(bytes))); err != nil {
		return 0, err
	}
	return uintptr(p), nil
}

func (g *cudaGPU) free(p uintptr) error {
	return g.check("cuMemFree", C.gt_cu_free(g.c, C.CUdeviceptr(p)))
}

func (g *cudaGPU) copy(dst, src uintptr, bytes int) error {
	return g.check("cuMemcpyDtoDAsync", C.gt_cu_copy(g.c, C.CUdeviceptr(dst), C.CUdeviceptr(src), C.size_t(bytes)))
}

func (g *cudaGPU) upload(dst uintptr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	return g.check("cuMemcpyHtoD", C.gt_cu_upload(g.c, C.CUdeviceptr(dst), unsafe.Pointer(&src[0]), C.size_t(len(src))))
}

func (g *cudaGPU) download(dst []byte, src uintptr) error {
	if len(dst) == 0 {
		return nil
	}
	return g.check("cuMemcpyDtoH", C.gt_cu_download(g.c, unsafe.Pointer(&dst[0]), C.CUdeviceptr(src), C.size_t(len(dst))))
}

func (g *cudaGPU) sumSlots(dst, slots uintptr, n, nslots, stride int) error {
	if n == 0 {
		return nil
	}
	grid := min((n+255)/256, 1<<16)
	return g.check(fmt.Sprintf("gt_comm_sum_slots over %d slots of %d floats", nslots, n),
		C.gt_cu_sum_slots(g.c, g.fn, C.CUdeviceptr(dst), C.CUdeviceptr(slots), C.longlong(n), C.longlong(nslots), C.longlong(stride), C.uint(grid)))
}

func (g *cudaGPU) sync() error     { return g.check("cuStreamSynchronize", C.gt_cu_sync(g.c)) }
func (g *cudaGPU) stream() uintptr { return 0 }

func (g *cudaGPU) close() error {
	return g.check("releasing the primary context", C.gt_cu_release(g.c, g.dev))
}

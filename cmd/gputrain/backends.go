package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/internal/suggest"
	"github.com/gputrain/gputrain/model"
)

// backends maps a --backend name to its constructor. Backends that need a
// build tag (cuda, emu) add themselves from an init in a file carrying that
// tag, so the default build stays pure Go.
var backends = map[string]func() (model.Backend, error){}

// knownBackends are names that exist in some build, for a helpful error
// when this binary was built without them.
var knownBackends = map[string]string{
	"cuda": "build with -tags cuda on a machine with the CUDA toolkit",
	"emu":  "it needs cgo: build with CGO_ENABLED=1 and g++",
}

// backendAbout describes each backend for the devices command and --help.
var backendAbout = map[string]string{
	"cpu":  "pure Go, the reference",
	"cuda": "our CUDA kernels on an NVIDIA GPU",
	"emu":  "the CUDA kernels run by the CPU emulator: slow, for checking kernels without a GPU",
}

func registerBackend(name string, open func() (model.Backend, error)) {
	backends[name] = open
}

// registerDeviceBackend registers a device.Backend over the driver that
// newDriver opens (the cuda and emu backends differ only in the driver). The
// backend owns the driver; if the backend cannot be made, the driver is
// closed here.
func registerDeviceBackend(name string, newDriver func() (device.Driver, error)) {
	registerBackend(name, func() (model.Backend, error) {
		drv, err := newDriver()
		if err != nil {
			return nil, err
		}
		b, err := device.New(drv)
		if err != nil {
			drv.Close()
			return nil, err
		}
		return b, nil
	})
}

func init() {
	registerBackend("cpu", func() (model.Backend, error) { return cpu.New(), nil })
}

func backendNames() []string {
	var ns []string
	for n := range backends {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// checkBackend reports whether name is built in, without opening it.
func checkBackend(name string) error {
	if name == autoBackend {
		return nil
	}
	if _, ok := backends[name]; ok {
		return nil
	}
	built := strings.Join(backendNames(), ", ")
	if how, ok := knownBackends[name]; ok {
		return fmt.Errorf("backend %q is not built into this binary (%s); built in: %s", name, how, built)
	}
	return fmt.Errorf("unknown backend %q%s (built in: %s; auto picks one)", quoteShort(name), suggest.Mean(name, append(backendNames(), autoBackend)), built)
}

func openBackend(name string) (model.Backend, error) {
	if name == autoBackend {
		name, _ = resolveAuto()
	}
	if err := checkBackend(name); err != nil {
		return nil, err
	}
	b, err := backends[name]()
	if err != nil {
		return nil, fmt.Errorf("opening backend %q: %w", name, err)
	}
	return b, nil
}

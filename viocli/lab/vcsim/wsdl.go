package main

// The vSphere WSDL, served as vCenter serves it: GET /sdk/vimService.wsdl, /sdk/vim.wsdl and the schema
// files they include, without a session. govmomi 0.24.2's simulator has none; SOAP clients that build
// their requests from the WSDL (suds, hence oslo.vmware and OpenStack's VMware drivers) need it. The
// files are generated from pyVmomi's type metadata by viocli/lab/vim_wsdl.py into the -wsdl-dir
// directory and read once at start.

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
)

// serviceWSDL is the file clients load first; a -wsdl-dir without it is refused.
const serviceWSDL = "vimService.wsdl"

type wsdlFiles struct {
	next    http.Handler
	files   map[string][]byte // by base name
	modTime time.Time
}

// loadWSDL reads the .wsdl and .xsd files of dir.
func loadWSDL(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the WSDL directory: %v", err)
	}
	files := map[string][]byte{}
	for _, entry := range entries {
		name := entry.Name()
		if entry.IsDir() || !(strings.HasSuffix(name, ".wsdl") || strings.HasSuffix(name, ".xsd")) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading the WSDL: %v", err)
		}
		files[name] = data
	}
	if _, ok := files[serviceWSDL]; !ok {
		return nil, fmt.Errorf("the WSDL directory %s has no %s", dir, serviceWSDL)
	}
	return files, nil
}

// newWSDLHandler answers GET and HEAD of /sdk/<file> for the given files and passes everything else on.
func newWSDLHandler(next http.Handler, files map[string][]byte) http.Handler {
	return &wsdlFiles{next: next, files: files, modTime: time.Now()}
}

func (h *wsdlFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		dir, name := path.Split(r.URL.Path)
		if data, ok := h.files[name]; ok && dir == simulator.Map.Path+"/" {
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			http.ServeContent(w, r, name, h.modTime, bytes.NewReader(data))
			return
		}
	}
	h.next.ServeHTTP(w, r)
}

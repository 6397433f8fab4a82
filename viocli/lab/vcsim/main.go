// Command vcsim serves the viocli lab's simulated vCenter: govmomi's simulator (the vSphere SOAP API at
// /sdk) with the lab inventory (inventory.go), clone-time customization (clone.go) and strict
// authentication (guard.go), over TLS with the lab's certificate, and the vSphere WSDL at
// /sdk/vimService.wsdl when -wsdl-dir names the generated files (wsdl.go); -also-listen serves the
// same on more addresses (listen.go).
//
// Built by viocli/lab/simulator.py in GOPATH mode against Debian's golang-github-vmware-govmomi-dev
// (0.24.2); nothing is downloaded. Once the server listens it prints one line on stdout,
//
//	VCSIM READY https://HOST:PORT/sdk
//
// and from then on writes only to stderr (stdout is pointed at stderr, so a caller may close its pipe).
// It serves until SIGTERM or SIGINT and then exits with status 0. Errors before READY exit with 1.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
)

// readyPrefix starts the one line on stdout that tells the caller the server is listening.
const readyPrefix = "VCSIM READY "

// shutdownGrace bounds how long in-flight requests (long polls such as WaitForUpdatesEx) delay exit.
const shutdownGrace = time.Second

type options struct {
	listen       string
	alsoListen   addressList
	certFile     string
	keyFile      string
	credentials  string
	datastoreDir string
	wsdlDir      string
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:0", "HOST:PORT to listen on (port 0: any free port)")
	flag.Var(&o.alsoListen, "also-listen", "another HOST:PORT to serve on (repeatable)")
	flag.StringVar(&o.certFile, "cert", "", "PEM server certificate (required)")
	flag.StringVar(&o.keyFile, "key", "", "PEM private key of -cert (required)")
	flag.StringVar(&o.credentials, "credentials", "", "file with two lines: username, password (required)")
	flag.StringVar(&o.datastoreDir, "datastore-dir", "",
		"directory holding one subdirectory per datastore, emptied at start (default: a temporary directory)")
	flag.StringVar(&o.wsdlDir, "wsdl-dir", "",
		"directory with vimService.wsdl and the files it imports, served at /sdk/<name> (default: no WSDL)")
	flag.Parse()
	return o
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("vcsim: ")
	if err := run(parseFlags()); err != nil {
		log.Printf("error: %v", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.certFile == "" || o.keyFile == "" || o.credentials == "" {
		return fmt.Errorf("-cert, -key and -credentials are required")
	}
	user, password, err := readCredentials(o.credentials)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
	if err != nil {
		return fmt.Errorf("loading the TLS certificate %s: %v", o.certFile, err)
	}
	var wsdl map[string][]byte
	if o.wsdlDir != "" {
		if wsdl, err = loadWSDL(o.wsdlDir); err != nil {
			return err
		}
	}
	dsRoot, cleanup, err := datastoreRoot(o.datastoreDir)
	if err != nil {
		return err
	}
	defer cleanup()

	model, err := createModel(dsRoot)
	if err != nil {
		return fmt.Errorf("building the lab inventory: %v", err)
	}
	defer model.Remove()

	model.Service.Listen = &url.URL{Host: o.listen, User: url.UserPassword(user, password)}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	server, err := startServer(model.Service)
	if err != nil {
		return err
	}
	// Every request passes the guard (guard.go), but for GETs of the WSDL, public as on vCenter
	// (wsdl.go); with a WSDL, zoneless xsd:dateTime values are made UTC first (datetime.go). No request
	// can be in flight yet: nobody knows the address before the READY line below.
	server.Config.Handler = newGuard(server.Config.Handler, user)
	if wsdl != nil {
		server.Config.Handler = newDateTimeFixer(server.Config.Handler, dateTimeNames(wsdl))
		server.Config.Handler = newWSDLHandler(server.Config.Handler, wsdl)
	}
	also, err := serveAlso(server, o.alsoListen)
	if err != nil {
		closeServer(server)
		return err
	}

	fmt.Printf("%shttps://%s/sdk\n", readyPrefix, server.URL.Host)
	_ = os.Stdout.Sync()
	detachStdout()
	log.Printf("serving https://%s/sdk as %s", server.URL.Host, user)
	for _, address := range o.alsoListen {
		log.Printf("also serving https://%s/sdk", address)
	}

	waitForSignal()
	closeListeners(also)
	closeServer(server)
	log.Printf("stopped")
	return nil
}

// readCredentials returns the username and password from a file of two lines.
func readCredentials(path string) (string, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("reading credentials: %v", err)
	}
	defer f.Close()
	var lines []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() && len(lines) < 2 {
		lines = append(lines, strings.TrimRight(scanner.Text(), "\r"))
	}
	if err := scanner.Err(); err != nil {
		return "", "", fmt.Errorf("reading credentials %s: %v", path, err)
	}
	if len(lines) < 2 || lines[0] == "" || lines[1] == "" {
		return "", "", fmt.Errorf("credentials file %s needs two non-empty lines: username, password", path)
	}
	return lines[0], lines[1], nil
}

// datastoreRoot returns the directory for the datastores' files and a cleanup func. A given directory
// is kept; only the datastore subdirectories inside it are emptied (the inventory is in memory, so files
// left by an earlier run would only collide with new VMs of the same name).
func datastoreRoot(dir string) (string, func(), error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "vcsim-datastores-")
		if err != nil {
			return "", nil, err
		}
		return tmp, func() { _ = os.RemoveAll(tmp) }, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", nil, fmt.Errorf("creating %s: %v", abs, err)
	}
	for _, name := range datastoreNames {
		if err := os.RemoveAll(filepath.Join(abs, name)); err != nil {
			return "", nil, err
		}
	}
	return abs, func() {}, nil
}

// startServer calls Service.NewServer, turning its panic on a busy or invalid address into an error.
func startServer(service *simulator.Service) (server *simulator.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot serve on %s: %v", service.Listen.Host, r)
		}
	}()
	return service.NewServer(), nil
}

// detachStdout points file descriptor 1 at stderr, so later writes never block on, or die of, a pipe
// the caller has stopped reading.
func detachStdout() {
	if err := syscall.Dup3(int(os.Stderr.Fd()), int(os.Stdout.Fd()), 0); err != nil {
		log.Printf("cannot redirect stdout to stderr: %v", err)
	}
}

func waitForSignal() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	sig := <-signals
	log.Printf("received %s, stopping", sig)
	signal.Stop(signals)
}

// closeServer closes the listener and waits for requests in flight; connections still busy after
// shutdownGrace (long polls such as WaitForUpdatesEx) are closed.
func closeServer(server *simulator.Server) {
	done := make(chan struct{})
	go func() {
		server.Close()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(shutdownGrace):
	}
	log.Printf("closing connections still busy after %s", shutdownGrace)
	server.CloseClientConnections()
	select {
	case <-done:
	case <-time.After(shutdownGrace / 4):
		log.Printf("requests still in flight (a long poll does not see its connection close); exiting anyway")
	}
}

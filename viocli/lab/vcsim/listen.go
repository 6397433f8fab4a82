package main

// More addresses for the same server (-also-listen, repeatable): the SDK, the WSDL and datastore files
// answered on each, over TLS with the same certificate. The lab's vCenter listens on its own port, but
// glance_store's VMware store has no port option and always connects to 443.

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"

	"github.com/vmware/govmomi/simulator"
)

// addressList is a repeatable HOST:PORT flag.
type addressList []string

func (a *addressList) String() string { return strings.Join(*a, ",") }

func (a *addressList) Set(address string) error {
	*a = append(*a, address)
	return nil
}

// serveAlso listens on every address (all or none) and serves the server's handler there.
func serveAlso(server *simulator.Server, addresses []string) ([]net.Listener, error) {
	var listeners []net.Listener
	for _, address := range addresses {
		listener, err := net.Listen("tcp", address)
		if err != nil {
			closeListeners(listeners)
			return nil, fmt.Errorf("cannot serve on %s: %v", address, err)
		}
		listeners = append(listeners, listener)
	}
	for _, listener := range listeners {
		go func(l net.Listener) { _ = server.Config.Serve(tls.NewListener(l, server.TLS)) }(listener)
	}
	return listeners, nil
}

func closeListeners(listeners []net.Listener) {
	for _, l := range listeners {
		_ = l.Close()
	}
}

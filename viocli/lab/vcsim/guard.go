package main

// The guard closes what govmomi 0.24.2's simulator leaves open once Service.Listen carries the lab's
// username and password (with which SessionManager.Login accepts exactly that pair):
//   - LoginByToken accepts any SAML assertion with a subject and LoginExtensionByCertificate any client
//     certificate: both are refused with InvalidLogin, so the password is the only way in;
//   - RetrieveProperties, RetrievePropertiesEx, Fetch and List are served without a session: they now
//     need a valid session cookie (NotAuthenticated otherwise), as on vCenter;
//   - datastore, guest file and NFC transfers (/folder, /guestFile, /nfc) need a valid session cookie.

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const maxSOAPBody = 64 << 20

var refusedLogins = map[string]bool{"LoginByToken": true, "LoginExtensionByCertificate": true, "LoginBySSPI": true}

var sessionRequired = map[string]bool{"RetrieveProperties": true, "RetrievePropertiesEx": true, "Fetch": true, "List": true}

var transferPrefixes = []string{"/folder", "/guestFile", "/nfc"}

type guard struct {
	next http.Handler
	user string
}

func newGuard(next http.Handler, user string) http.Handler {
	return &guard{next: next, user: user}
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && (path == simulator.Map.Path || path == simulator.Map.Path+"/vimService"):
		if !g.checkSOAP(w, r) {
			return
		}
	case hasAnyPrefix(path, transferPrefixes):
		if !g.authenticated(r) {
			log.Printf("refused %s %s from %s: no session", r.Method, path, r.RemoteAddr)
			http.Error(w, "not authenticated", http.StatusUnauthorized)
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

// checkSOAP reads the request body (putting it back for the simulator) and answers refused calls.
func (g *guard) checkSOAP(w http.ResponseWriter, r *http.Request) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSOAPBody+1))
	_ = r.Body.Close()
	if err != nil || len(body) > maxSOAPBody {
		http.Error(w, "request body unreadable or too large", http.StatusRequestEntityTooLarge)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	method, this, ok := soapMethod(body)
	switch {
	case !ok:
		writeFault(w, "InvalidRequest", "no SOAP method found in the request", "")
		return false
	case refusedLogins[method]:
		log.Printf("refused %s from %s: only the password login is allowed", method, r.RemoteAddr)
		writeFault(w, "InvalidLogin", "Login failure", "")
		return false
	case sessionRequired[method] && !g.authenticated(r):
		log.Printf("refused %s from %s: no session", method, r.RemoteAddr)
		detail := fmt.Sprintf(`<object type="%s">%s</object><privilegeId>System.View</privilegeId>`,
			escape(this.Type), escape(this.Value))
		writeFault(w, "NotAuthenticated", "The session is not authenticated.", detail)
		return false
	}
	return true
}

// authenticated says whether the request carries the cookie of a live session of the lab's user.
func (g *guard) authenticated(r *http.Request) bool {
	cookie, err := r.Cookie(soap.SessionCookieName)
	if err != nil || cookie.Value == "" {
		return false
	}
	ctx := &simulator.Context{Context: r.Context(), Map: simulator.Map}
	res := simulator.Map.SessionManager().SessionIsActive(ctx, &types.SessionIsActive{
		SessionID: cookie.Value,
		UserName:  g.user,
	})
	body, ok := res.(*methods.SessionIsActiveBody)
	return ok && body.Res != nil && body.Res.Returnval
}

// soapMethod returns the name and _this of the first element inside the SOAP Body.
func soapMethod(body []byte) (string, types.ManagedObjectReference, bool) {
	var this types.ManagedObjectReference
	decoder := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	method := ""
	for {
		token, err := decoder.Token()
		if err != nil {
			return method, this, method != ""
		}
		start, ok := token.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case !inBody:
			inBody = start.Name.Local == "Body"
		case method == "":
			method = start.Name.Local
		default:
			if start.Name.Local == "_this" {
				var ref struct {
					Type  string `xml:"type,attr"`
					Value string `xml:",chardata"`
				}
				_ = decoder.DecodeElement(&ref, &start)
				this = types.ManagedObjectReference{Type: ref.Type, Value: ref.Value}
			}
			return method, this, true
		}
	}
}

// writeFault answers with a vim25 SOAP fault, as the simulator does.
func writeFault(w http.ResponseWriter, kind, message, detail string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" `+
		`xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" `+
		`xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>%s</faultstring>`+
		`<detail><%sFault xmlns="urn:vim25" xsi:type="%s">%s</%sFault></detail>`+
		`</soapenv:Fault></soapenv:Body></soapenv:Envelope>`,
		escape(message), kind, kind, detail, kind)
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

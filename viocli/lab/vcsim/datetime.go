package main

// xsd:dateTime values without a time zone. The schema allows them and vCenter takes them as UTC, but
// govmomi 0.24.2 decodes times with RFC 3339 only and refuses the whole request. oslo.vmware sends
// them: RegisterExtension's lastHeartbeatTime is Python's utcnow().isoformat(), as nova-compute
// registers its extension at start. The fixer appends "Z" to such a value in a SOAP request when the
// element's name is one the WSDL declares as xsd:dateTime (the names are read from the served schema).

import (
	"bytes"
	"io"
	"net/http"
	"regexp"

	"github.com/vmware/govmomi/simulator"
)

// dateTimeElement finds an XSD element declared as xsd:dateTime; its name is the first group.
var dateTimeElement = regexp.MustCompile(`<element name="([A-Za-z_][\w.-]*)" type="xsd:dateTime"`)

// zonelessDateTime finds an element whose whole text is a date and time without a zone: groups are the
// element's local name and the text.
var zonelessDateTime = regexp.MustCompile(
	`<(?:[\w.-]+:)?([A-Za-z_][\w.-]*)(?:\s[^<>]*)?>(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)</`)

type dateTimeFixer struct {
	next  http.Handler
	names map[string]bool
}

// dateTimeNames returns the names of the elements the schema files declare as xsd:dateTime.
func dateTimeNames(files map[string][]byte) map[string]bool {
	names := map[string]bool{}
	for _, data := range files {
		for _, match := range dateTimeElement.FindAllSubmatch(data, -1) {
			names[string(match[1])] = true
		}
	}
	return names
}

func newDateTimeFixer(next http.Handler, names map[string]bool) http.Handler {
	return &dateTimeFixer{next: next, names: names}
}

func (f *dateTimeFixer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if r.Method == http.MethodPost && (path == simulator.Map.Path || path == simulator.Map.Path+"/vimService") {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxSOAPBody+1))
		_ = r.Body.Close()
		if err != nil || len(body) > maxSOAPBody {
			http.Error(w, "request body unreadable or too large", http.StatusRequestEntityTooLarge)
			return
		}
		body = f.fix(body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	f.next.ServeHTTP(w, r)
}

// fix appends "Z" to every zoneless date and time in an element declared as xsd:dateTime.
func (f *dateTimeFixer) fix(body []byte) []byte {
	matches := zonelessDateTime.FindAllSubmatchIndex(body, -1)
	if len(matches) == 0 {
		return body
	}
	var out bytes.Buffer
	last := 0
	for _, m := range matches {
		name, valueEnd := string(body[m[2]:m[3]]), m[5]
		if !f.names[name] {
			continue
		}
		out.Write(body[last:valueEnd])
		out.WriteByte('Z')
		last = valueEnd
	}
	out.Write(body[last:])
	return out.Bytes()
}

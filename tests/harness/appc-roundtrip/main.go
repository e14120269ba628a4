// appc-roundtrip reads an appc manifest (image or pod) with appc's own Go types, the ones
// actool and rkt used, and prints it as those types write it back. Any field the types
// reject fails here; any field they do not know is missing from the output.
//
// Built by the conformance tests against Debian's golang-github-appc-spec-dev, offline:
//   GOPATH=/usr/share/gocode GO111MODULE=off go build -o appc-roundtrip main.go
package main

import (
	"encoding/json"
	"fmt"
	"io/ioutil"
	"os"

	"github.com/appc/spec/schema"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: appc-roundtrip MANIFEST")
		os.Exit(2)
	}
	b, err := ioutil.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	var k schema.Kind
	if err := k.UnmarshalJSON(b); err != nil {
		fail(err)
	}
	var m json.Marshaler
	switch k.ACKind {
	case schema.ImageManifestKind:
		im := &schema.ImageManifest{}
		err = im.UnmarshalJSON(b)
		m = im
	case schema.PodManifestKind:
		pm := &schema.PodManifest{}
		err = pm.UnmarshalJSON(b)
		m = pm
	}
	if err != nil {
		fail(err)
	}
	out, err := m.MarshalJSON()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(out)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "appc-roundtrip: %v\n", err)
	os.Exit(1)
}

// Prints, as JSON, the Go type tree of corev1.PodTemplateSpec in the k8s.io/api version the pinned
// Flagger is built with: every type's printed name, kind, fields in declaration order and JSON
// names. serin's core reproduces Flagger's revision hash (a spew dump of the pod template) from
// it; see crates/core/src/flagger_hash. Regenerate with hack/upstream/podtemplate-schema.sh.
//
// With the argument `hash`, reads pod templates (one JSON document per line) on stdin and prints
// the hash Flagger's own code gives each: the reference values of serin's unit tests. With
// `webhook-checksum`, reads Canary statuses instead and prints the `checksum` of Flagger's webhook
// payloads for each (canaryChecksum in pkg/controller/webhook.go, which is not exported).
package main

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"

	"bufio"
	"fmt"

	flaggerv1 "github.com/fluxcd/flagger/pkg/apis/flagger/v1beta1"
	"github.com/fluxcd/flagger/pkg/canary"
	corev1 "k8s.io/api/core/v1"
)

type field struct {
	Name   string `json:"name"`
	JSON   string `json:"json,omitempty"`
	Inline bool   `json:"inline,omitempty"`
	Type   string `json:"type"`
}

type typeInfo struct {
	Printed string  `json:"printed"`
	Kind    string  `json:"kind"`
	Elem    string  `json:"elem,omitempty"`
	Key     string  `json:"key,omitempty"`
	Fields  []field `json:"fields,omitempty"`
	// Decoded by its own UnmarshalJSON rather than field by field.
	CustomJSON bool `json:"customJSON,omitempty"`
}

type schema struct {
	Root  string              `json:"root"`
	Types map[string]typeInfo `json:"types"`
}

func id(t reflect.Type) string {
	if t.Name() != "" && t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	return t.String()
}

func visit(t reflect.Type, s *schema) string {
	key := id(t)
	if _, seen := s.Types[key]; seen {
		return key
	}
	info := typeInfo{Printed: t.String(), Kind: t.Kind().String()}
	info.CustomJSON = reflect.PointerTo(t).Implements(reflect.TypeOf((*json.Unmarshaler)(nil)).Elem())
	s.Types[key] = info
	switch t.Kind() {
	case reflect.Ptr, reflect.Slice, reflect.Array:
		info.Elem = visit(t.Elem(), s)
	case reflect.Map:
		info.Key = visit(t.Key(), s)
		info.Elem = visit(t.Elem(), s)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("json"), ",")
			name := tag[0]
			inline := false
			for _, option := range tag[1:] {
				inline = inline || option == "inline"
			}
			if f.Anonymous && name == "" {
				inline = true
			}
			if name == "" && !inline && f.IsExported() {
				name = f.Name
			}
			if name == "-" || !f.IsExported() {
				name = ""
			}
			info.Fields = append(info.Fields, field{Name: f.Name, JSON: name, Inline: inline, Type: visit(f.Type, s)})
		}
	}
	s.Types[key] = info
	return key
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "webhook-checksum" {
		lines := bufio.NewScanner(os.Stdin)
		for lines.Scan() {
			var status flaggerv1.CanaryStatus
			if err := json.Unmarshal(lines.Bytes(), &status); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println(canary.ComputeHash(struct {
				TrackedConfigs  *map[string]string
				LastAppliedSpec string
			}{status.TrackedConfigs, status.LastAppliedSpec}))
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "hash" {
		lines := bufio.NewScanner(os.Stdin)
		lines.Buffer(make([]byte, 1<<20), 1<<24)
		for lines.Scan() {
			var template corev1.PodTemplateSpec
			if err := json.Unmarshal(lines.Bytes(), &template); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println(canary.ComputeHash(template))
		}
		return
	}
	s := &schema{Types: map[string]typeInfo{}}
	s.Root = visit(reflect.TypeOf(corev1.PodTemplateSpec{}), s)
	encoder := json.NewEncoder(os.Stdout)
	encoder.SetIndent("", " ")
	if err := encoder.Encode(s); err != nil {
		os.Exit(1)
	}
}

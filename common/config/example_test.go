package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestExampleDocumentsEveryKey keeps etc/tern.toml, the installed example,
// complete: every key of the schema appears in it.
func TestExampleDocumentsEveryKey(t *testing.T) {
	var c Config
	md, err := toml.DecodeFile("../../etc/tern.toml", &c)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range schemaKeys(reflect.TypeOf(Config{}), "") {
		if !md.IsDefined(strings.Split(k, ".")...) {
			t.Errorf("etc/tern.toml does not show key %q", k)
		}
	}
}

// schemaKeys lists the dotted keys of a config struct.
func schemaKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, schemaKeys(f.Type, prefix+name+".")...)
			continue
		}
		keys = append(keys, prefix+name)
	}
	return keys
}

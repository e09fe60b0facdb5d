// Package strictjson parses untrusted JSON into a tree without any of
// encoding/json's leniencies: duplicate keys are an error at every depth
// (encoding/json silently keeps the last one, so two parsers could disagree
// about what was signed), trailing data is an error, invalid UTF-8 is an
// error (encoding/json would replace it), nesting is bounded, and numbers
// keep their literal text. Model: containers/image
// signature/internal/json.go (ParanoidUnmarshalJSONObject).
//
// It owns syntax only; deciding which keys are required or allowed is the
// caller's job.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// MaxDepth bounds nesting; our formats need 3 levels, and recursion on
// hostile input must stay shallow.
const MaxDepth = 64

// Kind is the JSON type of a Value.
type Kind int

// The JSON kinds.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Bool:
		return "boolean"
	case Number:
		return "number"
	case String:
		return "string"
	case Array:
		return "array"
	case Object:
		return "object"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Value is one parsed JSON value.
type Value struct {
	Kind    Kind
	Bool    bool
	Number  json.Number // literal text, for Number
	String  string
	Elems   []Value  // for Array
	Members []Member // for Object, in document order, keys unique
}

// Member is one key/value pair of an object.
type Member struct {
	Key   string
	Value Value
}

// Get returns the member named key of an object.
func (v Value) Get(key string) (Value, bool) {
	for _, m := range v.Members {
		if m.Key == key {
			return m.Value, true
		}
	}
	return Value{}, false
}

// Parse parses data, which must hold exactly one JSON value.
func Parse(data []byte) (Value, error) {
	if !utf8.Valid(data) {
		return Value{}, errors.New("invalid utf-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return Value{}, fmt.Errorf("parsing json: %w", err)
	}
	v, err := fromToken(dec, tok, 0)
	if err != nil {
		return Value{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return Value{}, errors.New("unexpected data after json value")
	}
	return v, nil
}

func fromToken(dec *json.Decoder, tok json.Token, depth int) (Value, error) {
	switch t := tok.(type) {
	case nil:
		return Value{Kind: Null}, nil
	case bool:
		return Value{Kind: Bool, Bool: t}, nil
	case json.Number:
		return Value{Kind: Number, Number: t}, nil
	case string:
		return Value{Kind: String, String: t}, nil
	case json.Delim:
		if depth >= MaxDepth {
			return Value{}, fmt.Errorf("json nested deeper than %d levels", MaxDepth)
		}
		switch t {
		case '{':
			return parseObject(dec, depth)
		case '[':
			return parseArray(dec, depth)
		}
	}
	return Value{}, fmt.Errorf("unexpected json token %v", tok)
}

func parseObject(dec *json.Decoder, depth int) (Value, error) {
	v := Value{Kind: Object}
	seen := map[string]bool{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return Value{}, fmt.Errorf("parsing json object: %w", err)
		}
		if tok == json.Delim('}') {
			return v, nil
		}
		key, ok := tok.(string)
		if !ok {
			return Value{}, fmt.Errorf("object key expected, got %v", tok)
		}
		if seen[key] {
			return Value{}, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		tok, err = dec.Token()
		if err != nil {
			return Value{}, fmt.Errorf("parsing value of %q: %w", key, err)
		}
		val, err := fromToken(dec, tok, depth+1)
		if err != nil {
			return Value{}, fmt.Errorf("in %q: %w", key, err)
		}
		v.Members = append(v.Members, Member{Key: key, Value: val})
	}
}

func parseArray(dec *json.Decoder, depth int) (Value, error) {
	v := Value{Kind: Array, Elems: []Value{}}
	for {
		tok, err := dec.Token()
		if err != nil {
			return Value{}, fmt.Errorf("parsing json array: %w", err)
		}
		if tok == json.Delim(']') {
			return v, nil
		}
		val, err := fromToken(dec, tok, depth+1)
		if err != nil {
			return Value{}, err
		}
		v.Elems = append(v.Elems, val)
	}
}

// ExactObject checks that v is an object with exactly the keys in keys.
func ExactObject(v Value, keys ...string) error {
	if v.Kind != Object {
		return fmt.Errorf("expected an object, got %v", v.Kind)
	}
	for _, m := range v.Members {
		known := false
		for _, k := range keys {
			if m.Key == k {
				known = true
				break
			}
		}
		if !known {
			return fmt.Errorf("unknown key %q", m.Key)
		}
	}
	for _, k := range keys {
		if _, ok := v.Get(k); !ok {
			return fmt.Errorf("missing key %q", k)
		}
	}
	return nil
}

// StringField returns the string member key of object v.
func StringField(v Value, key string) (string, error) {
	f, ok := v.Get(key)
	if !ok {
		return "", fmt.Errorf("missing key %q", key)
	}
	if f.Kind != String {
		return "", fmt.Errorf("%q must be a string, got %v", key, f.Kind)
	}
	return f.String, nil
}

package strictjson

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{}`, true},
		{`{"a":[1,"x",true,null,{"b":-0.5e3}]}`, true},
		{` [ ] `, true},
		{`"s"`, true},
		{`{"a":1,"a":1}`, false},
		{`{"a":{"b":1,"b":2}}`, false},
		{`[{"b":1,"b":2}]`, false},
		{`{"a":1,"\u0061":2}`, false},
		{`{"a":1,}`, false},
		{`[1,]`, false},
		{`{"a" 1}`, false},
		{`{"a":01}`, false},
		{`{} {}`, false},
		{`{}x`, false},
		{`{`, false},
		{``, false},
		{"\"\xff\"", false},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), true},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), false},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestObjectHelpers(t *testing.T) {
	v, err := Parse([]byte(`{"a":"x","b":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := ExactObject(v, "a", "b"); err != nil {
		t.Error(err)
	}
	if err := ExactObject(v, "a"); err == nil {
		t.Error("unknown key b accepted")
	}
	if err := ExactObject(v, "a", "b", "c"); err == nil {
		t.Error("missing key c accepted")
	}
	if s, err := StringField(v, "a"); err != nil || s != "x" {
		t.Errorf("StringField(a) = %q, %v", s, err)
	}
	if _, err := StringField(v, "b"); err == nil {
		t.Error("number accepted as string")
	}
	if v.Members[1].Value.Number.String() != "2" {
		t.Errorf("number literal = %q", v.Members[1].Value.Number)
	}
}

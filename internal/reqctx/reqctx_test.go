package reqctx

import (
	"context"
	"testing"
)

func TestUser(t *testing.T) {
	if got := User(context.Background()); got != Anonymous {
		t.Fatalf("empty context: %q", got)
	}
	if got := User(WithUser(context.Background(), "alice")); got != "alice" {
		t.Fatalf("got %q", got)
	}
	if got := User(WithUser(context.Background(), "")); got != Anonymous {
		t.Fatalf("empty user: %q", got)
	}
}

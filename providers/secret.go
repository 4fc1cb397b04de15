package providers

import (
	"fmt"
	"io"
)

// Secret is a configuration value that must never be printed or logged:
// tokens, API keys, signing keys. Every way of printing it shows
// "[redacted]"; Reveal is the one way to use it.
type Secret string

// String hides the value from fmt.
func (Secret) String() string { return "[redacted]" }

// GoString hides the value from %#v.
func (Secret) GoString() string { return "[redacted]" }

// MarshalText hides the value from encoders (JSON, YAML, slog).
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Format hides the value from every fmt verb, even a wrong one such as %d,
// for which fmt would otherwise print the raw string.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "[redacted]") }

// Reveal returns the value, for the few places that must use it.
func (s Secret) Reveal() string { return string(s) }

package mailgun

// Contact IDs: an e-mail address is not a valid BonyChat custom ID (those
// allow only A-Z a-z 0-9 _ = + / @ and at most 50 characters), so the
// contact's address is encoded.
//
// The address is lower-cased first (see NormalizeAddress), so it never
// holds an ASCII capital. The encoding uses the capitals for its escapes:
// the code is then prefix-free without an escape character that could
// also occur in an address ('=' and '/' can: SRS and BATV senders use them).
//
//	a-z 0-9 @ + _    stay as they are
//	.                =
//	-                /
//	any other byte   two capitals from A-P: its high and low nibble (0=A … 15=P)
//
// So jane.doe@example.com is jane=doe@example=com, o'neil@x-y.ie is
// oCHneil@x/y=ie and müller@bücher.de is mMDLMller@bMDLMcher=de. Each
// address has exactly one encoding and each encoding one address.
//
// An encoding over 50 characters cannot be a contact ID. Such an address
// gets a hashed ID instead: a hint (the start of the local part's encoding,
// up to 17 characters), "/", and 32 base64 characters of its SHA-256. The
// hashed ID → address mapping is stored (namespace "mailgun-contact")
// before the ID is handed out, and decoding looks it up; one that is not
// stored is unknown, never guessed.
//
// The two forms cannot be confused: a readable ID holds the address's one
// '@', a hashed ID holds none (neither the local part nor base64 has one).

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/schema"
)

// nsContact is the Records namespace of hashed ID → address mappings.
const nsContact = "mailgun-contact"

const (
	maxIDLen = 50 // BonyChat's limit on a custom contact ID
	// maxAddressLen is RFC 5321's limit on a path (254 characters between
	// the angle brackets); nothing longer can be delivered.
	maxAddressLen = 254
	hashBytes     = 24 // of SHA-256: 192 bits, 32 base64 characters
	hashLen       = 32
	maxHintLen    = maxIDLen - 1 - hashLen
)

// hashedShape is the form of every hashed ID: a hint, "/" and the hash.
var hashedShape = regexp.MustCompile(`^[a-z0-9_+=/A-P]{0,17}/[A-Za-z0-9+/]{32}$`)

var (
	// ErrInvalidAddress: the address is not one this provider can use as a
	// contact (not a single plain address, or over RFC 5321's length).
	ErrInvalidAddress = errors.New("mailgun: not a usable e-mail address")
	// ErrUnknownContact: the contact ID is not one this server hands out
	// (malformed, or a hashed ID it has no record of). The caller answers 400.
	ErrUnknownContact = errors.New("mailgun: unknown contact ID")
)

// NormalizeAddress trims and lower-cases an address, then checks it is one
// plain address (addr-spec) as net/mail reads it: exactly one '@', no
// display name, comment, angle brackets or quoted local part.
//
// The whole address is folded, the local part too. RFC 5321 lets a server
// treat local parts as case-sensitive, but mail systems in use do not, and
// one contact writing as Jane@ and jane@ must stay one contact. Folding is
// Unicode's simple lower-casing (strings.ToLower); there is no Unicode
// normalisation, so a composed and a decomposed "ü" stay two addresses.
func NormalizeAddress(address string) (string, error) {
	if !utf8.ValidString(address) {
		// Checked before folding: strings.ToLower would silently turn the
		// bad bytes into U+FFFD and make up an address.
		return "", fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidAddress, address)
	}
	addr := strings.ToLower(strings.TrimSpace(address))
	if len(addr) > maxAddressLen {
		return "", fmt.Errorf("%w: %q is longer than %d bytes", ErrInvalidAddress, address, maxAddressLen)
	}
	if strings.Count(addr, "@") != 1 {
		return "", fmt.Errorf("%w: %q does not have exactly one @", ErrInvalidAddress, address)
	}
	parsed, err := mail.ParseAddress(addr)
	if err != nil || parsed.Name != "" || parsed.Address != addr {
		// A parse that changed anything means the input was more than an
		// address ("Jane <jane@x>", a comment, a quoted local part).
		return "", fmt.Errorf("%w: %q is not a plain address", ErrInvalidAddress, address)
	}
	return addr, nil
}

// EncodeContactID returns the contact ID of an address: readable when it
// fits, else hashed, and then the mapping is stored before the ID is
// returned, so every ID handed out can be decoded. The same address
// (after NormalizeAddress) always gets the same ID. An address that is not
// usable is ErrInvalidAddress; a failing store is returned as it is.
func EncodeContactID(ctx context.Context, rec providers.Records, address string) (string, error) {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return "", err
	}
	id, hashed := contactIDFor(addr)
	if !hashed {
		return id, nil
	}
	if err := remember(ctx, rec, id, addr); err != nil {
		return "", err
	}
	return id, nil
}

// DecodeContactID returns the address of a contact ID that EncodeContactID
// handed out. Anything else (not a custom ID, not an exact encoding of a
// normalized address, a hashed ID with no record) is ErrUnknownContact.
// A failing store, or a record that does not match its ID, is returned as
// another error: that is the server's fault, not the caller's.
func DecodeContactID(ctx context.Context, rec providers.Records, id string) (string, error) {
	if !schema.IsCustomID(id) {
		return "", unknownContact(id, "not a valid custom ID")
	}
	switch strings.Count(id, "@") {
	case 1:
		return decodeReadableID(id)
	case 0:
		return lookupHashedID(ctx, rec, id)
	}
	return "", unknownContact(id, "more than one @")
}

func unknownContact(id, why string) error {
	return fmt.Errorf("%w %q: %s", ErrUnknownContact, id, why)
}

// contactIDFor is the contact ID of a normalized address, and whether it is
// the hashed form (which needs a stored mapping).
func contactIDFor(addr string) (id string, hashed bool) {
	if id, ok := encodeReadable(addr); ok {
		return id, false
	}
	return hashedID(addr), true
}

// decodeReadableID accepts only the exact encoding of a normalized address
// that fits: a stray capital, a non-folded address or an ID that decodes to
// something that is not a plain address is unknown.
func decodeReadableID(id string) (string, error) {
	addr, ok := decodeReadable(id)
	if !ok {
		return "", unknownContact(id, "not an encoded e-mail address")
	}
	if norm, err := NormalizeAddress(addr); err != nil || norm != addr {
		return "", unknownContact(id, "does not encode a lower-case plain address")
	}
	return addr, nil
}

// lookupHashedID reads the mapping stored when the ID was handed out, and
// checks it: the stored address must hash to this very ID.
func lookupHashedID(ctx context.Context, rec providers.Records, id string) (string, error) {
	if !hashedShape.MatchString(id) {
		return "", unknownContact(id, "not an encoded e-mail address")
	}
	if rec == nil {
		return "", errors.New("mailgun: contact IDs need a record store")
	}
	v, found, err := rec.Get(ctx, nsContact, id)
	if err != nil {
		return "", fmt.Errorf("mailgun: reading contact %q: %w", id, err)
	}
	if !found || len(v) == 0 {
		return "", unknownContact(id, "no e-mail address was mapped to it")
	}
	addr := string(v)
	if norm, err := NormalizeAddress(addr); err == nil && norm == addr {
		if want, hashed := contactIDFor(addr); hashed && want == id {
			return addr, nil
		}
	}
	return "", fmt.Errorf("mailgun: contact record %q holds %q, which does not map back to it", id, addr)
}

// remember stores id → addr unless it is stored already. It never replaces
// another address: a hash collision (or a damaged record) is an error
// rather than a contact ID that would reach someone else. An empty value
// counts as no record (Records has no delete).
func remember(ctx context.Context, rec providers.Records, id, addr string) error {
	if rec == nil {
		return errors.New("mailgun: contact IDs need a record store")
	}
	v, found, err := rec.Get(ctx, nsContact, id)
	if err != nil {
		return fmt.Errorf("mailgun: reading contact %q: %w", id, err)
	}
	if found && len(v) > 0 {
		if string(v) != addr {
			return fmt.Errorf("mailgun: contact ID %q is already mapped to another address", id)
		}
		return nil
	}
	if err := rec.Put(ctx, nsContact, id, []byte(addr)); err != nil {
		return fmt.Errorf("mailgun: storing contact %q: %w", id, err)
	}
	return nil
}

// hashedID is the ID of an address whose encoding does not fit: a readable
// hint from its local part, so an agent still sees whose it is, then the
// hash that makes it unique.
func hashedID(addr string) string {
	local, _, _ := strings.Cut(addr, "@")
	sum := sha256.Sum256([]byte(addr))
	return hint(local) + "/" + base64.RawStdEncoding.EncodeToString(sum[:hashBytes])
}

// hint is the start of s's encoding, cut between characters: never inside
// an escape, nor between the bytes of one UTF-8 character.
func hint(s string) string {
	var out []byte
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		next := out
		for _, c := range []byte(s[i : i+size]) {
			next = appendByte(next, c)
		}
		if len(next) > maxHintLen {
			break
		}
		out, i = next, i+size
	}
	return string(out)
}

// encodeReadable is s's readable encoding, and whether it can be a contact
// ID (1 to 50 characters). It is defined for any bytes.
func encodeReadable(s string) (string, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		out = appendByte(out, s[i])
	}
	return string(out), len(out) > 0 && len(out) <= maxIDLen
}

// nibbles are the escape letters: nibbles[n] stands for the value n.
const nibbles = "ABCDEFGHIJKLMNOP"

func appendByte(out []byte, c byte) []byte {
	switch {
	case keptAsIs(c):
		return append(out, c)
	case c == '.':
		return append(out, '=')
	case c == '-':
		return append(out, '/')
	}
	return append(out, nibbles[c>>4], nibbles[c&0x0f])
}

func keptAsIs(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '@' || c == '+' || c == '_'
}

// decodeReadable inverts encodeReadable. It refuses anything
// encodeReadable cannot produce (an unpaired or foreign capital, or an
// escape for a byte that has a shorter form), so a decoded ID re-encodes
// to itself and no address has two IDs.
func decodeReadable(id string) (string, bool) {
	out := make([]byte, 0, len(id))
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case keptAsIs(c):
			out = append(out, c)
		case c == '=':
			out = append(out, '.')
		case c == '/':
			out = append(out, '-')
		case i+1 < len(id) && isNibble(c) && isNibble(id[i+1]):
			b := (c-'A')<<4 | (id[i+1] - 'A')
			if keptAsIs(b) || b == '.' || b == '-' {
				return "", false
			}
			out = append(out, b)
			i++
		default:
			return "", false
		}
	}
	return string(out), true
}

func isNibble(c byte) bool { return 'A' <= c && c <= 'P' }

package mailgun

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"regexp"
	"strings"
	"testing"
	"testing/quick"
	"unicode/utf8"

	"github.com/bonychat/bonychat-adapter/internal/testkit"
)

// idPattern is BonyChat's custom ID rule, written out again here rather
// than taken from package schema, so the test does not trust the code.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_=+/@]{1,50}$`)

// The expected IDs were computed outside Go (a few lines of Python
// implementing the table in contactid.go), not by the code under test.
func TestEncodeContactID_Examples(t *testing.T) {
	cases := []struct {
		name, address, id string
	}{
		{"plain", "jane@example.com", "jane@example=com"},
		{"dots", "jane.doe@example.com", "jane=doe@example=com"},
		{"hyphens", "mary-jane@my-company.co.uk", "mary/jane@my/company=co=uk"},
		{"plus addressing", "jane+support@example.com", "jane+support@example=com"},
		{"underscore", "first_last@example.com", "first_last@example=com"},
		{"digits", "agent007@mail2.example.com", "agent007@mail2=example=com"},
		{"upper case is folded", "Jane.Doe@Example.COM", "jane=doe@example=com"},
		{"surrounding space is trimmed", "  jane@example.com \n", "jane@example=com"},
		{"apostrophe is escaped", "o'neil@x-y.ie", "oCHneil@x/y=ie"},
		{"literal = and / are escaped", "user=tag/x@example.com", "userDNtagCPx@example=com"},
		{"unicode local part and IDN", "müller@bücher.de", "mMDLMller@bMDLMcher=de"},
		{"unicode upper case is folded", "MÜLLER@BÜCHER.DE", "mMDLMller@bMDLMcher=de"},
		{"turkish", "Şule@Örnek.com.tr", "MFJPule@MDLGrnek=com=tr"},
		{"CJK", "用户@例子.广告", "OHJEKIOGIILH@OELOILOFKNJA=OFLJLPOFJBIK"},
		{"domain literal", "jane@[192.168.0.1]", "jane@FL192=168=0=1FN"},
		{"shortest", "a@b", "a@b"},
		{"exactly 50 characters stays readable", strings.Repeat("a", 38) + "@example.com", strings.Repeat("a", 38) + "@example=com"},
		{"long domain that fits", "x@" + strings.Repeat("a", 40) + ".com", "x@" + strings.Repeat("a", 40) + "=com"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := testkit.NewRecords()
			id, err := EncodeContactID(context.Background(), rec, c.address)
			if err != nil {
				t.Fatalf("EncodeContactID(%q): %v", c.address, err)
			}
			if id != c.id {
				t.Fatalf("EncodeContactID(%q) = %q, want %q", c.address, id, c.id)
			}
			if !idPattern.MatchString(id) {
				t.Fatalf("%q is not a valid custom ID", id)
			}
			if len(rec.Puts()) != 0 {
				t.Fatalf("a readable ID stored %d records, want none", len(rec.Puts()))
			}
			// Decoding needs no store: nil must do.
			addr, err := DecodeContactID(context.Background(), nil, id)
			if err != nil {
				t.Fatalf("DecodeContactID(%q): %v", id, err)
			}
			want, _ := NormalizeAddress(c.address)
			if addr != want {
				t.Fatalf("DecodeContactID(%q) = %q, want %q", id, addr, want)
			}
		})
	}
}

func TestEncodeContactID_LongAddressIsHashedAndStored(t *testing.T) {
	cases := []struct {
		name, address, id string
	}{
		{
			"51 characters",
			strings.Repeat("a", 39) + "@example.com",
			"aaaaaaaaaaaaaaaaa/rOxW/Gx+Gxtp0ghHuH7svH2BCePp6Luy",
		},
		{
			"long dotted local part",
			"this.is.a.very.long.local.part.for.testing@subdomain.example.com",
			"this=is=a=very=lo/6EBpFATUd7boQ5hVnuTw3fJlve3Jbyib",
		},
		{
			// The hint stops before an escape that would not fit whole.
			"accents",
			"Ünïcödé.üsér.with.many.accents@exämple.com",
			"MDLMnMDKPcMDLGd/KmN4Sasexu5O9W2F/nIkDRug1Bkb31TY",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			rec := testkit.NewRecords()
			want, _ := NormalizeAddress(c.address)
			id, err := EncodeContactID(ctx, rec, c.address)
			if err != nil {
				t.Fatalf("EncodeContactID: %v", err)
			}
			if id != c.id {
				t.Fatalf("EncodeContactID = %q, want %q", id, c.id)
			}
			if !idPattern.MatchString(id) || strings.Contains(id, "@") {
				t.Fatalf("%q: not a valid hashed ID", id)
			}
			if got, ok := rec.Value(nsContact, id); !ok || string(got) != want {
				t.Fatalf("record %s/%s = %q, %v; want %q", nsContact, id, got, ok, want)
			}
			addr, err := DecodeContactID(ctx, rec, id)
			if err != nil || addr != want {
				t.Fatalf("DecodeContactID = %q, %v; want %q", addr, err, want)
			}
			// Encoding again (any case) gives the same ID and writes nothing.
			again, err := EncodeContactID(ctx, rec, strings.ToUpper(c.address))
			if err != nil || again != id || len(rec.Puts()) != 1 {
				t.Fatalf("second EncodeContactID = %q, %v (%d writes); want %q, 1 write", again, err, len(rec.Puts()), id)
			}
			// Another server (empty store) does not know the ID: no guess.
			if _, err := DecodeContactID(ctx, testkit.NewRecords(), id); !errors.Is(err, ErrUnknownContact) {
				t.Fatalf("DecodeContactID with an empty store: %v, want ErrUnknownContact", err)
			}
		})
	}
}

func TestEncodeContactID_InvalidAddresses(t *testing.T) {
	cases := []string{
		"",
		"   ",
		"jane",
		"jane@",
		"@example.com",
		"jane@@example.com",
		"jane@doe@example.com",
		"Jane Doe <jane@example.com>", // a header value, not an address
		"<jane@example.com>",
		"jane@example.com (Jane)",
		`"jane doe"@example.com`, // quoted local parts are refused
		"jane doe@example.com",
		"jane.@example.com",
		".jane@example.com",
		"ja..ne@example.com",
		"jane@example..com",
		"jane\x00@example.com",
		"ja\xffne@example.com", // not UTF-8: never silently turned into U+FFFD
		"jane@example.com, joe@example.com",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com", // 255 bytes
	}
	for _, address := range cases {
		rec := testkit.NewRecords()
		id, err := EncodeContactID(context.Background(), rec, address)
		if !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("EncodeContactID(%q) = %q, %v; want ErrInvalidAddress", address, id, err)
		}
		if len(rec.Puts()) != 0 {
			t.Errorf("EncodeContactID(%q) stored a record", address)
		}
	}
	// 254 bytes is still an address (hashed).
	longest := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com"
	if _, err := EncodeContactID(context.Background(), testkit.NewRecords(), longest); err != nil {
		t.Errorf("254-byte address: %v", err)
	}
}

func TestDecodeContactID_UnknownIDs(t *testing.T) {
	ctx := context.Background()
	rec := testkit.NewRecords()
	// A stored mapping, so "not stored" below is not just an empty store.
	stored, err := EncodeContactID(ctx, rec, strings.Repeat("a", 60)+"@example.com")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, id string }{
		{"empty", ""},
		{"raw address (dot)", "jane.doe@example.com"},
		{"raw address (hyphen)", "mary-jane@example=com"},
		{"space", "jane @example=com"},
		{"51 characters", strings.Repeat("a", 39) + "@example=com"},
		{"two @", "jane@doe@example=com"},
		{"no @ and not hashed", "janedoe"},
		{"phone number", "+60177872890"},
		{"capital outside A-P", "Jane@example=com"},
		{"unpaired capital", "jAne@example=com"},
		{"capital pair split by a literal", "jMaD@example=com"},
		{"escaped dot instead of =", "janeCOdoe@example=com"},
		{"escaped hyphen instead of /", "maryCNjane@example=com"},
		{"escaped letter", "GKane@example=com"},
		{"escaped upper-case letter (not folded)", "EKane@example=com"},
		{"escaped @", "janeEAdoe@example=com"},
		{"escape of invalid UTF-8", "PPjane@example=com"},
		{"decodes to an empty local part", "@example=com"},
		{"decodes to an empty domain", "jane@"},
		{"decodes to a trailing dot", "jane=@example=com"},
		{"decodes to a quoted local part", "CCjaneCAdoeCC@example=com"},
		{"decodes to a display name", "jane@example=comCADIGKDO"},
		{"hashed shape, never handed out", "jane/" + strings.Repeat("A", 32)},
		{"hashed shape, one character of the stored ID changed", stored[:len(stored)-1] + flip(stored[len(stored)-1])},
		{"hashed shape, short hash", strings.TrimSuffix(stored, stored[len(stored)-1:])},
		{"hint too long", strings.Repeat("a", 18) + "/" + stored[len(stored)-32:]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, err := DecodeContactID(ctx, rec, c.id)
			if !errors.Is(err, ErrUnknownContact) {
				t.Fatalf("DecodeContactID(%q) = %q, %v; want ErrUnknownContact", c.id, addr, err)
			}
			if addr != "" {
				t.Fatalf("an error came with an address: %q", addr)
			}
		})
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func TestContactID_StoreFailures(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("a", 60) + "@example.com"
	down := errors.New("db down")

	t.Run("read fails on encode: no ID", func(t *testing.T) {
		rec := testkit.NewRecords()
		rec.FailGets("", down)
		id, err := EncodeContactID(ctx, rec, long)
		if !errors.Is(err, down) || id != "" {
			t.Fatalf("got %q, %v; want no ID and the store's error", id, err)
		}
	})
	t.Run("write fails on encode: no ID", func(t *testing.T) {
		rec := testkit.NewRecords()
		rec.FailPuts("", down)
		id, err := EncodeContactID(ctx, rec, long)
		if !errors.Is(err, down) || id != "" {
			t.Fatalf("got %q, %v; want no ID and the store's error", id, err)
		}
	})
	t.Run("readable IDs need no store", func(t *testing.T) {
		rec := testkit.NewRecords()
		rec.FailGets("", down)
		rec.FailPuts("", down)
		if id, err := EncodeContactID(ctx, rec, "jane@example.com"); err != nil || id != "jane@example=com" {
			t.Fatalf("got %q, %v", id, err)
		}
		if id, err := EncodeContactID(ctx, nil, "jane@example.com"); err != nil || id != "jane@example=com" {
			t.Fatalf("nil store: got %q, %v", id, err)
		}
	})
	t.Run("read fails on decode: a server error, not unknown", func(t *testing.T) {
		rec := testkit.NewRecords()
		id, err := EncodeContactID(ctx, rec, long)
		if err != nil {
			t.Fatal(err)
		}
		rec.FailGets("", down)
		_, err = DecodeContactID(ctx, rec, id)
		if !errors.Is(err, down) || errors.Is(err, ErrUnknownContact) {
			t.Fatalf("got %v; want the store's error", err)
		}
	})
	t.Run("no store for a hashed ID", func(t *testing.T) {
		if id, err := EncodeContactID(ctx, nil, long); err == nil {
			t.Fatalf("encoded %q without storing it", id)
		}
		if _, err := DecodeContactID(ctx, nil, hashedID(long)); err == nil || errors.Is(err, ErrUnknownContact) {
			t.Fatalf("got %v; want a server error", err)
		}
	})
}

func TestContactID_NeverReplacesAnotherAddress(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("a", 60) + "@example.com"
	id := hashedID(long)
	rec := testkit.NewRecords()
	// As if another address hashed to the same ID (or the record was damaged).
	if err := rec.Put(ctx, nsContact, id, []byte("someone-else@example.com")); err != nil {
		t.Fatal(err)
	}
	if got, err := EncodeContactID(ctx, rec, long); err == nil {
		t.Fatalf("EncodeContactID handed out %q, already mapped elsewhere", got)
	}
	if v, _ := rec.Value(nsContact, id); string(v) != "someone-else@example.com" {
		t.Fatalf("the record was replaced: %q", v)
	}
	// And the damaged record does not decode to the address it holds.
	if addr, err := DecodeContactID(ctx, rec, id); err == nil || errors.Is(err, ErrUnknownContact) {
		t.Fatalf("DecodeContactID = %q, %v; want a server error", addr, err)
	}
}

func TestContactID_EmptyRecordCountsAsNone(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("a", 60) + "@example.com"
	id := hashedID(long)
	rec := testkit.NewRecords()
	if err := rec.Put(ctx, nsContact, id, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeContactID(ctx, rec, id); !errors.Is(err, ErrUnknownContact) {
		t.Fatalf("empty record: %v, want ErrUnknownContact", err)
	}
	if got, err := EncodeContactID(ctx, rec, long); err != nil || got != id {
		t.Fatalf("EncodeContactID = %q, %v", got, err)
	}
	if addr, err := DecodeContactID(ctx, rec, id); err != nil || addr != long {
		t.Fatalf("DecodeContactID = %q, %v", addr, err)
	}
}

func TestDecodeContactID_RecordForAReadableAddressIsRefused(t *testing.T) {
	// A record under a hashed-looking key whose address has a readable ID:
	// EncodeContactID never writes one, so it is damage, not a contact.
	ctx := context.Background()
	rec := testkit.NewRecords()
	id := "jane/" + strings.Repeat("A", 32)
	if err := rec.Put(ctx, nsContact, id, []byte("jane@example.com")); err != nil {
		t.Fatal(err)
	}
	if addr, err := DecodeContactID(ctx, rec, id); err == nil {
		t.Fatalf("DecodeContactID = %q", addr)
	}
}

// addressGen makes addresses of every kind the codec must handle: ASCII
// atext, capitals, Unicode (including runes whose lower case is longer or
// outside ASCII), IDN domains, domain literals, and lengths on both sides
// of 50 characters. Many come out invalid (".." and the like); those only
// have to be refused.
type addressGen struct{ r *rand.Rand }

var (
	genASCII   = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	genSpecial = "!#$%&'*+-/=?^_`{|}~."
	genUnicode = []rune("éüßİıKΣςñⱯȺ用户例子😀ŞÖдЖ")
	genDomain  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
)

func (g addressGen) char(special bool) string {
	switch n := g.r.Intn(20); {
	case n < 14:
		return string(genASCII[g.r.Intn(len(genASCII))])
	case n < 17 && special:
		return string(genSpecial[g.r.Intn(len(genSpecial))])
	default:
		return string(genUnicode[g.r.Intn(len(genUnicode))])
	}
}

func (g addressGen) run(n int, special bool, domain bool) string {
	var b strings.Builder
	for range n {
		if domain && g.r.Intn(6) == 0 {
			b.WriteByte(genDomain[g.r.Intn(len(genDomain))])
			continue
		}
		b.WriteString(g.char(special))
	}
	return b.String()
}

func (g addressGen) address() string {
	local := g.run(1+g.r.Intn(g.maxLen()), true, false)
	var domain string
	if g.r.Intn(30) == 0 {
		domain = fmt.Sprintf("[%d.%d.%d.%d]", g.r.Intn(256), g.r.Intn(256), g.r.Intn(256), g.r.Intn(256))
	} else {
		labels := make([]string, 1+g.r.Intn(3))
		for i := range labels {
			labels[i] = g.run(1+g.r.Intn(g.maxLen()), false, true)
		}
		domain = strings.Join(labels, ".")
	}
	addr := local + "@" + domain
	if g.r.Intn(10) == 0 {
		addr = " " + addr + "\t"
	}
	return addr
}

// maxLen mostly keeps parts short (readable IDs), sometimes long (hashed).
func (g addressGen) maxLen() int {
	if g.r.Intn(4) == 0 {
		return 40
	}
	return 12
}

// checkAddress asserts every property of the codec for one address and
// returns its ID ("" when the address is refused).
func checkAddress(t *testing.T, rec *testkit.Records, address string) (id, folded string) {
	t.Helper()
	ctx := context.Background()
	folded, nerr := NormalizeAddress(address)
	id, err := EncodeContactID(ctx, rec, address)
	if nerr != nil {
		if !errors.Is(err, ErrInvalidAddress) || id != "" {
			t.Fatalf("EncodeContactID(%q) = %q, %v; NormalizeAddress refused it (%v)", address, id, err, nerr)
		}
		return "", ""
	}
	if err != nil {
		t.Fatalf("EncodeContactID(%q): %v", address, err)
	}
	if again, _ := NormalizeAddress(folded); again != folded {
		t.Fatalf("folding is not stable: %q → %q → %q", address, folded, again)
	}
	if !idPattern.MatchString(id) {
		t.Fatalf("EncodeContactID(%q) = %q: not a valid custom ID", address, id)
	}
	if again, err := EncodeContactID(ctx, rec, folded); err != nil || again != id {
		t.Fatalf("not deterministic: %q → %q, its folded form %q → %q (%v)", address, id, folded, again, err)
	}
	readable, fits := encodeReadable(folded)
	if fits != (readable == id) || fits == (strings.Count(id, "@") == 0) {
		t.Fatalf("%q → %q: readable %q (fits %v) and the ID's form disagree", folded, id, readable, fits)
	}
	addr, err := DecodeContactID(ctx, rec, id)
	if err != nil || addr != folded {
		t.Fatalf("round trip: %q → %q → %q, %v; want %q", address, id, addr, err, folded)
	}
	return id, folded
}

// flipCase swaps the case of some ASCII letters (which folding must undo).
func flipCase(r *rand.Rand, s string) string {
	b := []byte(s)
	for i, c := range b {
		if r.Intn(2) == 0 {
			switch {
			case 'a' <= c && c <= 'z':
				b[i] = c - 'a' + 'A'
			case 'A' <= c && c <= 'Z':
				b[i] = c - 'A' + 'a'
			}
		}
	}
	return string(b)
}

func TestContactID_Properties(t *testing.T) {
	const n = 20000
	r := rand.New(rand.NewSource(20240605))
	g := addressGen{r}
	rec := testkit.NewRecords()
	owner := map[string]string{} // ID → folded address
	var valid, hashed int
	for range n {
		address := g.address()
		id, folded := checkAddress(t, rec, address)
		if id == "" {
			continue
		}
		valid++
		if !strings.Contains(id, "@") {
			hashed++
		}
		if prev, ok := owner[id]; ok && prev != folded {
			t.Fatalf("%q and %q share the ID %q", prev, folded, id)
		}
		owner[id] = folded
		// The same address in other cases has the same ID.
		if other, _ := checkAddress(t, rec, flipCase(r, address)); other != id {
			t.Fatalf("%q → %q but a case variant → %q", address, id, other)
		}
	}
	t.Logf("%d addresses: %d valid (%d distinct), %d hashed", n, valid, len(owner), hashed)
	// The generator must exercise both forms, or the test proves little.
	if valid < n/4 || hashed < valid/10 || valid-hashed < valid/10 {
		t.Fatalf("generator coverage too low: %d valid, %d hashed", valid, hashed)
	}
}

func TestContactID_ExhaustiveSmallAddressesNeverCollide(t *testing.T) {
	// Every local part of up to 4 symbols chosen among the ones the escapes
	// are about: near-identical addresses are where a sloppy code collides.
	symbols := []string{"a", "b", ".", "-", "=", "/", "+", "_", "A", "é", "'"}
	rec := testkit.NewRecords()
	owner := map[string]string{} // ID → folded address
	folds := map[string]bool{}   // distinct folded addresses
	var locals []string
	var grow func(prefix string, n int)
	grow = func(prefix string, n int) {
		if prefix != "" {
			locals = append(locals, prefix)
		}
		if n == 0 {
			return
		}
		for _, s := range symbols {
			grow(prefix+s, n-1)
		}
	}
	grow("", 4)
	valid := 0
	for _, local := range locals {
		for _, domain := range []string{"x.y", "x-y", "x=y.z"} {
			id, folded := checkAddress(t, rec, local+"@"+domain)
			if id == "" {
				continue
			}
			valid++
			if prev, ok := owner[id]; ok && prev != folded {
				t.Fatalf("%q and %q share the ID %q", prev, folded, id)
			}
			owner[id] = folded
			folds[folded] = true
		}
	}
	t.Logf("%d local parts, %d valid addresses, %d folded, %d IDs", len(locals), valid, len(folds), len(owner))
	if len(folds) != len(owner) {
		t.Fatalf("%d distinct addresses but %d IDs", len(folds), len(owner))
	}
	if valid < 10000 {
		t.Fatalf("only %d valid addresses", valid)
	}
}

func TestReadableCodec_IsABijectionOnBytes(t *testing.T) {
	cfg := &quick.Config{MaxCount: 5000, Rand: rand.New(rand.NewSource(7))}
	// Every byte string encodes, and decodes back exactly; the encoding uses
	// only custom-ID characters.
	roundTrip := func(b []byte) bool {
		enc, _ := encodeReadable(string(b))
		dec, ok := decodeReadable(enc)
		return ok && dec == string(b) && (enc == "" || strings.Trim(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_=+/@") == "")
	}
	if err := quick.Check(roundTrip, cfg); err != nil {
		t.Fatal(err)
	}
	// Whatever decodes is the one encoding of what it decodes to.
	canonical := func(s string) bool {
		dec, ok := decodeReadable(s)
		if !ok {
			return true
		}
		enc, _ := encodeReadable(dec)
		return enc == s
	}
	if err := quick.Check(canonical, cfg); err != nil {
		t.Fatal(err)
	}
	// And the same over strings made of the ID alphabet, which hit the
	// escape rules far more often than random Unicode.
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_=+/@"
	r := rand.New(rand.NewSource(11))
	for range 20000 {
		b := make([]byte, r.Intn(12))
		for i := range b {
			b[i] = alphabet[r.Intn(len(alphabet))]
		}
		if !canonical(string(b)) {
			t.Fatalf("%q decodes but is not its decoding's encoding", b)
		}
	}
}

func TestDecodeContactID_AcceptsOnlyWhatEncodeHandsOut(t *testing.T) {
	// Random IDs from the alphabet, half of them with one '@': any that
	// decodes must be exactly what EncodeContactID gives its address.
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_=+/"
	r := rand.New(rand.NewSource(99))
	ctx := context.Background()
	rec := testkit.NewRecords()
	decoded := 0
	for range 50000 {
		b := make([]byte, 1+r.Intn(20))
		for i := range b {
			b[i] = alphabet[r.Intn(len(alphabet))]
		}
		if r.Intn(2) == 0 {
			b[r.Intn(len(b))] = '@'
		}
		id := string(b)
		addr, err := DecodeContactID(ctx, rec, id)
		if err != nil {
			if !errors.Is(err, ErrUnknownContact) {
				t.Fatalf("DecodeContactID(%q): %v; want ErrUnknownContact", id, err)
			}
			continue
		}
		decoded++
		if again, err := EncodeContactID(ctx, rec, addr); err != nil || again != id {
			t.Fatalf("%q decodes to %q, which encodes to %q (%v)", id, addr, again, err)
		}
	}
	if decoded == 0 {
		t.Fatal("no random ID decoded: the test checks nothing")
	}
}

var fuzzSeeds = []string{
	"jane.doe@example.com",
	"Mary-Jane+Tag@My-Company.co.uk",
	"o'neil@x-y.ie",
	"user=tag/x@example.com",
	"müller@bücher.de",
	"用户@例子.广告",
	"jane@[192.168.0.1]",
	strings.Repeat("a", 38) + "@example.com",
	strings.Repeat("a", 39) + "@example.com",
	"this.is.a.very.long.local.part.for.testing@subdomain.example.com",
	"Jane <jane@example.com>",
	"ja\xffne@example.com",
	"İstanbul@KELVIN.example",
	"",
}

func FuzzEncodeContactID(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, address string) {
		rec := testkit.NewRecords()
		id, folded := checkAddress(t, rec, address)
		if id != "" && !utf8.ValidString(folded) {
			t.Fatalf("%q folded to invalid UTF-8", address)
		}
	})
}

func FuzzDecodeContactID(f *testing.F) {
	for _, s := range fuzzSeeds {
		id, _ := encodeReadable(s)
		f.Add(id)
		f.Add(s)
	}
	f.Add("jane/" + strings.Repeat("A", 32))
	f.Fuzz(func(t *testing.T, id string) {
		ctx := context.Background()
		rec := testkit.NewRecords()
		addr, err := DecodeContactID(ctx, rec, id)
		if err != nil {
			// An empty store: every failure is the caller's (400).
			if !errors.Is(err, ErrUnknownContact) || addr != "" {
				t.Fatalf("DecodeContactID(%q) = %q, %v", id, addr, err)
			}
			return
		}
		if again, err := EncodeContactID(ctx, rec, addr); err != nil || again != id {
			t.Fatalf("%q decodes to %q, which encodes to %q (%v)", id, addr, again, err)
		}
	})
}

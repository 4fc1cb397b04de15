package mailgun

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
)

// A vector computed outside Go:
//
//	printf '%s' 1529006854a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0 |
//	  openssl dgst -sha256 -hmac mailgun-signing-key-example
const (
	vecKey       = providers.Secret("mailgun-signing-key-example")
	vecTimestamp = "1529006854"
	vecToken     = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
	vecSignature = "6202247eb04c640e910d84df1966ae9fbe3c2d9b32d9a3ea7bea6badef75a4a0"
)

var vecTime = time.Unix(1529006854, 0)

const day = 24 * time.Hour

// mailgunSign signs as Mailgun does, written here again rather than using
// the package's sign, so a mistake there cannot hide in both.
func mailgunSign(key, timestamp, token string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(timestamp + token))
	return hex.EncodeToString(mac.Sum(nil))
}

func TestVerify_ExternalVector(t *testing.T) {
	if got := mailgunSign(string(vecKey), vecTimestamp, vecToken); got != vecSignature {
		t.Fatalf("test signer: %s, want %s", got, vecSignature)
	}
	for _, now := range []time.Time{vecTime, vecTime.Add(23 * time.Hour), vecTime.Add(-4 * time.Minute)} {
		if err := Verify(vecKey, vecTimestamp, vecToken, vecSignature, now, day); err != nil {
			t.Errorf("now %v: %v", now, err)
		}
	}
	// Hex digits in capitals are the same signature.
	if err := Verify(vecKey, vecTimestamp, vecToken, strings.ToUpper(vecSignature), vecTime, day); err != nil {
		t.Errorf("upper-case hex: %v", err)
	}
}

func TestVerify_SignedNow(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)
	key := "0123456789abcdef0123456789abcdef"
	ts := strconv.FormatInt(now.Unix(), 10)
	token := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca4"
	if err := Verify(providers.Secret(key), ts, token, mailgunSign(key, ts, token), now, day); err != nil {
		t.Fatal(err)
	}
}

func TestVerify_BadSignature(t *testing.T) {
	other := mailgunSign("another-key", vecTimestamp, vecToken)
	flipped := []byte(vecSignature)
	flipped[10] ^= 1 // '4' ↔ '5': still hex, one bit off
	cases := []struct {
		name                        string
		key                         providers.Secret
		timestamp, token, signature string
	}{
		{"wrong key", "another-key", vecTimestamp, vecToken, vecSignature},
		{"signed with another key", vecKey, vecTimestamp, vecToken, other},
		{"tampered token", vecKey, vecTimestamp, vecToken[:len(vecToken)-1] + "1", vecSignature},
		{"tampered timestamp", vecKey, "1529006855", vecToken, vecSignature},
		{"one bit of the signature", vecKey, vecTimestamp, vecToken, string(flipped)},
		{"truncated signature", vecKey, vecTimestamp, vecToken, vecSignature[:62]},
		{"signature with extra hex", vecKey, vecTimestamp, vecToken, vecSignature + "00"},
		{"signature not hex", vecKey, vecTimestamp, vecToken, "zz" + vecSignature[2:]},
		{"the same signature in base64", vecKey, vecTimestamp, vecToken, "YgIkfrBMZA6RDYTfGWaun748LZsy2aPqe+prre91pKA="},
		{"empty signature", vecKey, vecTimestamp, vecToken, ""},
		{"empty token", vecKey, vecTimestamp, "", mailgunSign(string(vecKey), vecTimestamp, "")},
		{"empty timestamp", vecKey, "", vecToken, mailgunSign(string(vecKey), "", vecToken)},
		{"empty key", "", vecTimestamp, vecToken, mailgunSign("", vecTimestamp, vecToken)},
		{"empty key, empty signature", "", vecTimestamp, vecToken, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.key, c.timestamp, c.token, c.signature, vecTime, day)
			if !errors.Is(err, ErrBadSignature) || errors.Is(err, ErrStaleTimestamp) {
				t.Fatalf("Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}

func TestVerify_SignatureCoversTheConcatenationOnly(t *testing.T) {
	// Mailgun signs timestamp+token with no separator, so the split point
	// is not signed. Harmless (the timestamp must still be fresh), and
	// recorded here so nobody "fixes" Verify into disagreeing with Mailgun.
	ts, token := vecTimestamp+"a", vecToken[1:]
	if err := Verify(vecKey, ts, token, vecSignature, vecTime, day); !errors.Is(err, ErrStaleTimestamp) {
		t.Fatalf("Verify = %v, want a verified signature with an unusable timestamp", err)
	}
}

func TestVerify_Freshness(t *testing.T) {
	key := "signing-key"
	now := time.Unix(1_800_000_000, 250_000_000)
	cases := []struct {
		name      string
		timestamp string
		maxAge    time.Duration
		want      error
	}{
		{"now", "1800000000", day, nil},
		{"exactly max age", strconv.FormatInt(now.Add(-day).Unix(), 10), day + 250*time.Millisecond, nil},
		{"a quarter second over max age", strconv.FormatInt(now.Add(-day).Unix(), 10), day, ErrStaleTimestamp},
		{"one second under max age", strconv.FormatInt(now.Add(-day).Unix()+1, 10), day, nil},
		{"one second over max age", strconv.FormatInt(now.Add(-day).Unix()-1, 10), day, ErrStaleTimestamp},
		{"a week old", strconv.FormatInt(now.Add(-7*day).Unix(), 10), day, ErrStaleTimestamp},
		{"zero (1970)", "0", day, ErrStaleTimestamp},
		{"8 hours old: a Mailgun retry", strconv.FormatInt(now.Add(-8*time.Hour).Unix(), 10), day, nil},
		{"8 hours old, window of 5 minutes", strconv.FormatInt(now.Add(-8*time.Hour).Unix(), 10), 5 * time.Minute, ErrStaleTimestamp},
		{"5 minutes ahead: clock skew", "1800000300", day, nil},
		{"5 minutes 1 second ahead", "1800000301", day, ErrStaleTimestamp},
		{"a day ahead", strconv.FormatInt(now.Add(day).Unix(), 10), day, ErrStaleTimestamp},
		{"far future", "9223372036854775807", day, ErrStaleTimestamp},
		{"beyond int64", "99999999999999999999", day, ErrStaleTimestamp},
		{"max age zero: nothing from the past", "1799999999", 0, ErrStaleTimestamp},
		{"negative max age: nothing from the past", "1799999999", -time.Hour, ErrStaleTimestamp},
		{"negative max age, skew ahead still bounded", "1800000301", -time.Hour, ErrStaleTimestamp},
		{"milliseconds", "1800000000000", day, ErrStaleTimestamp},
		{"fraction", "1800000000.5", day, ErrStaleTimestamp},
		{"sign", "+1800000000", day, ErrStaleTimestamp},
		{"negative", "-1800000000", day, ErrStaleTimestamp},
		{"spaces", " 1800000000", day, ErrStaleTimestamp},
		{"RFC 3339", "2027-01-15T08:00:00Z", day, ErrStaleTimestamp},
		{"hex", "0x6b49d200", day, ErrStaleTimestamp},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			token := "tok-" + c.name
			err := Verify(providers.Secret(key), c.timestamp, token, mailgunSign(key, c.timestamp, token), now, c.maxAge)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, c.want) || errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerify_SignatureIsCheckedBeforeTheTimestamp(t *testing.T) {
	// A stale request with a wrong signature is a bad signature: stale
	// only ever describes what Mailgun signed.
	err := Verify(vecKey, vecTimestamp, vecToken, mailgunSign("other", vecTimestamp, vecToken), vecTime.Add(30*day), day)
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify = %v, want ErrBadSignature", err)
	}
	err = Verify(vecKey, vecTimestamp, vecToken, vecSignature, vecTime.Add(30*day), day)
	if !errors.Is(err, ErrStaleTimestamp) {
		t.Fatalf("Verify = %v, want ErrStaleTimestamp", err)
	}
}

func TestVerify_ErrorsNeverShowTheKeyOrTheExpectedSignature(t *testing.T) {
	key := "super-secret-signing-key"
	want := mailgunSign(key, vecTimestamp, vecToken)
	for _, sig := range []string{"", "00", strings.Repeat("0", 64), want} {
		err := Verify(providers.Secret(key), vecTimestamp, vecToken, sig, vecTime.Add(30*day), day)
		if err == nil {
			t.Fatalf("signature %q verified", sig)
		}
		msg := fmt.Sprintf("%v %+v %#v", err, err, err)
		if strings.Contains(msg, key) || (sig != want && strings.Contains(msg, want)) {
			t.Fatalf("error shows a secret: %s", msg)
		}
	}
}

// A token's subject binds the ids and a digest of the body: the same body
// signs the same subject, another body with the same ids does not, and a
// subject recorded before digests were added still matches by its ids.
func TestTokenSubjectsBindTheBody(t *testing.T) {
	f := &Forward{Token: "t1", MessageID: "m1@example.org", From: "Jane <jane@example.org>", Text: "hello",
		Attachments: []ForwardAttachment{{FileName: "a.png", ContentType: "image/png", Body: []byte("png")}}}
	same := *f
	other := *f
	other.Attachments = []ForwardAttachment{{FileName: "a.png", ContentType: "image/png", Body: []byte("PNG")}}
	if forwardSubject(f) != forwardSubject(&same) || forwardSubject(f) == forwardSubject(&other) {
		t.Fatal("the forward subject does not follow the attachment's bytes")
	}
	e := &Event{Name: "failed", ID: "ev1", UserVariables: map[string]string{"mid": "m1", "x": "y"}}
	moved := *e
	moved.UserVariables = map[string]string{"mid": "m2", "x": "y"}
	if eventSubject(e) != eventSubject(&Event{Name: "failed", ID: "ev1", UserVariables: map[string]string{"x": "y", "mid": "m1"}}) ||
		eventSubject(e) == eventSubject(&moved) {
		t.Fatal("the event subject does not follow its user variables")
	}
	forged := *e
	forged.ID = "ev1#forged"
	if !sameSigned("event:ev1", eventSubject(e)) || sameSigned("event:ev2", eventSubject(e)) ||
		sameSigned("event:ev1#00", eventSubject(e)) || sameSigned("event:ev1", eventSubject(&forged)) ||
		!sameSigned("inbound:a#b@example.org", forwardSubject(&Forward{MessageID: "a#b@example.org"})) {
		t.Fatal("a subject recorded before digests is not compared by its ids alone")
	}
}

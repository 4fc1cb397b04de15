package mailgun

import (
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/schema"
)

func TestChosenOption(t *testing.T) {
	options := []string{"Great", "OK", "Bad"}
	cases := []struct {
		answer, want string
		ok           bool
	}{
		{"2", "OK", true}, {" 2 ", "OK", true}, {"2.", "OK", true}, {"3)", "Bad", true},
		{"great", "Great", true}, {"  BAD ", "Bad", true},
		{"4", "", false}, {"0", "", false}, {"2 please", "", false}, {"Great, thanks", "", false},
	}
	for _, tc := range cases {
		got, ok := chosenOption(tc.answer, options)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %q/%v, want %q/%v", tc.answer, got, ok, tc.want, tc.ok)
		}
	}
}

func TestQuickReplyAnswerReachesBonyChatAsTheOption(t *testing.T) {
	env := hdSetup(t)
	ctx := t.Context()
	if _, err := env.p.rememberOptions(ctx, "jane=doe@example=org", "m0", []string{"Track my order", "Talk to a human"}); err != nil {
		t.Fatal(err)
	}
	events := []schema.Event{{Type: "message", MID: "m1", Message: schema.TextMessage("2")}}
	env.p.mapQuickReplyAnswers(ctx, "jane=doe@example=org", events)
	if got := *events[0].Message.Text; got != "Talk to a human" {
		t.Fatalf("want the option's text, got %q", got)
	}
	other := []schema.Event{{Type: "message", MID: "m2", Message: schema.TextMessage("2")}}
	env.p.mapQuickReplyAnswers(ctx, "someone=else@example=org", other)
	if *other[0].Message.Text != "2" {
		t.Fatal("another contact's answer is left alone")
	}
	env.p.now = func() time.Time { return hdNow.Add(25 * time.Hour) }
	late := []schema.Event{{Type: "message", MID: "m3", Message: schema.TextMessage("1")}}
	env.p.mapQuickReplyAnswers(ctx, "jane=doe@example=org", late)
	if *late[0].Message.Text != "1" {
		t.Fatal("options expire after 24h")
	}
}

package twitch

import "testing"

func FuzzParseChatSent(f *testing.F) {
	f.Add([]byte(`{"data":[{"message_id":"abc","is_sent":true}]}`))
	f.Add([]byte(`{"data":[{"message_id":"","is_sent":false,"drop_reason":{"code":"msg_duplicate","message":"dup"}}]}`))
	f.Add([]byte(`{"data":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sent, err := parseChatSent(body)
		if err != nil {
			return
		}
		if !sent.IsSent && sent.DropCode == "" {
			t.Fatalf("a dropped message without a code: %+v", sent)
		}
		if sent.IsSent && (sent.DropCode != "" || sent.DropMessage != "") {
			t.Fatalf("a sent message with a drop reason: %+v", sent)
		}
	})
}

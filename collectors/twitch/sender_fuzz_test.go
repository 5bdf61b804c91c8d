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

func FuzzDecodeAPIRequest(f *testing.F) {
	f.Add("wb.api.twitch.channel_info", []byte(`{"version":1,"id":"x","operation":"channel_info","args":{"login":"bob"}}`))
	f.Add("wb.api.twitch.user_by_login", []byte(`{"version":1,"operation":"user_by_login"}`))
	f.Add("wb.api.twitch.user_by_login", []byte(`{"version":0}`))
	f.Fuzz(func(t *testing.T, subject string, body []byte) {
		req, apiErr := decodeAPIRequest(subject, body)
		if apiErr != nil {
			if apiErr.Code != "invalid" || apiErr.Message == "" {
				t.Fatalf("error %+v, want a described invalid", apiErr)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		if subject != "wb.api.twitch."+req.Operation {
			t.Fatalf("accepted operation %q on %s", req.Operation, subject)
		}
	})
}

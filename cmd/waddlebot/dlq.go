package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/dlq"
)

// runDLQ lists, shows and replays dead letters.
func runDLQ(ctx context.Context, args []string) error {
	fs := partFlags("dlq")
	stream := fs.String("stream", "", "only dead letters from this stream (WB_EVENTS, WB_COMMANDS, WB_REPLIES, ...)")
	limit := fs.Int("limit", 100, "list at most this many")
	all := fs.Bool("all", false, "replay: every dead letter (of --stream, if given)")
	keep := fs.Bool("keep", false, "replay: keep the dead letter after replaying it")
	p, err := parse(fs, args, config.GroupNATS, config.GroupData)
	if err != nil {
		return err
	}
	if len(p.args) == 0 {
		return usageError("dlq list [--stream S] | show <seq> | replay <seq>|--all [--keep]")
	}
	conn, err := connectNATS(ctx, p, "waddlebot dlq")
	if err != nil {
		return err
	}
	defer conn.Close()
	return withStreamHint(dlqCommand(ctx, conn.JS, p, *stream, *limit, *all, *keep), p)
}

func dlqCommand(ctx context.Context, js jetstream.JetStream, p parsed, stream string, limit int, all, keep bool) error {
	switch p.args[0] {
	case "list":
		entries, err := dlq.List(ctx, js, stream, limit)
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			fmt.Println("no dead letters")
			return nil
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tFAILED AT\tSTREAM\tCONSUMER\tSUBJECT\tFAILURES\tREASON")
		for _, e := range entries {
			d := e.Letter
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Seq, d.FailedAt.Format("2006-01-02 15:04:05"),
				d.Stream, d.Consumer, d.Subject, d.Failures, clip(d.Reason, 80))
		}
		return tw.Flush()
	case "show":
		seq, err := seqArg(p.args)
		if err != nil {
			return err
		}
		e, err := dlq.Show(ctx, js, seq)
		if err != nil {
			return err
		}
		out := map[string]any{"seq": e.Seq, "stream": e.Letter.Stream, "consumer": e.Letter.Consumer,
			"subject": e.Letter.Subject, "sequence": e.Letter.Sequence, "headers": e.Letter.Headers,
			"reason": e.Letter.Reason, "failures": e.Letter.Failures, "failed_at": e.Letter.FailedAt}
		if json.Valid(e.Letter.Body) {
			out["body"] = json.RawMessage(e.Letter.Body)
		} else if utf8.Valid(e.Letter.Body) {
			out["body_text"] = string(e.Letter.Body)
		} else {
			out["body_base64"] = e.Letter.Body
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "replay":
		var seqs []uint64
		if all {
			entries, err := dlq.List(ctx, js, stream, 0)
			if err != nil {
				return err
			}
			for _, e := range entries {
				seqs = append(seqs, e.Seq)
			}
		} else {
			seq, err := seqArg(p.args)
			if err != nil {
				return err
			}
			seqs = []uint64{seq}
		}
		var failed error
		for _, seq := range seqs {
			id, err := dlq.Replay(ctx, js, seq, !keep)
			switch {
			case errors.Is(err, dlq.ErrAlreadyReplayed):
				fmt.Printf("not replayed %d: it was replayed as %s within the duplicate window; the letter is kept\n", seq, id)
				failed = err
			case err != nil:
				return err
			default:
				fmt.Printf("replayed %d as %s\n", seq, id)
			}
		}
		if failed != nil {
			return failed
		}
		if len(seqs) == 0 {
			fmt.Println("no dead letters to replay")
		}
		return nil
	}
	return usageError("unknown dlq command %q", p.args[0])
}

func seqArg(args []string) (uint64, error) {
	if len(args) != 2 {
		return 0, usageError("%s <seq>", args[0])
	}
	seq, err := strconv.ParseUint(args[1], 10, 64)
	if err != nil || seq == 0 {
		return 0, usageError("%q is not a dead-letter sequence number", args[1])
	}
	return seq, nil
}

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

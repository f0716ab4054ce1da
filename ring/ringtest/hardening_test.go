package ringtest

import (
	"testing"

	"github.com/ringway/ringway/ring"
	"github.com/ringway/ringway/ringstate"
)

// stepMessage hands node n the message m from node from, split into the
// reliable layer's frames, and returns the first error.
func stepMessage(t *testing.T, n *ring.Node, from ring.NodeID, id uint64, m *ring.Message) error {
	t.Helper()
	body, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	const frag = ring.MaxPacket - 14 // the data frame header
	count := (len(body) + frag - 1) / frag
	for i := range count {
		p := body[i*frag : min(len(body), (i+1)*frag)]
		f, err := ring.Frame{Type: ring.FrameData, MsgID: id, Index: uint16(i), Count: uint16(count), Payload: p}.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Step(from, 0, f); err != nil {
			return err
		}
	}
	return nil
}

// A token crowded with carriages of unknown kinds goes through the real
// decoder and the production Holder without stopping the node: the
// security review's 256 unknown carriages once made the holder's own
// re-encode fail and the core panic ("encode own message").
func TestCrowdedTokenDoesNotPanic(t *testing.T) {
	for _, tc := range []struct {
		name    string
		unknown int
		accept  bool
	}{
		{"256 unknown carriages", 256, false}, // refused: no room for the core's own
		{"255 unknown carriages", 255, true},  // accepted; the Holder passes on 16
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ring.TestConfig()
			cfg.ID = 2
			cfg.Holder = ringstate.New(ringstate.Config{})
			n, err := ring.NewNode(cfg)
			if err != nil {
				t.Fatal(err)
			}
			tok := &ring.Message{Kind: ring.MsgToken, RingID: 7, Seq: 100, Sender: 1, Dest: 2, Members: []ring.NodeID{1, 2, 3}}
			for i := range tc.unknown {
				tok.Carriages = append(tok.Carriages, ring.Carriage{Kind: uint16(100 + i), Data: []byte{byte(i)}})
			}
			err = stepMessage(t, n, 1, 1, tok)
			if got := err == nil; got != tc.accept {
				t.Fatalf("Step: err %v, want accepted %v", err, tc.accept)
			}
			// Run until the token is passed on; decode what goes out.
			var sent []ring.Packet
			for i := 0; i < 100 && len(sent) == 0; i++ {
				n.Tick()
				for _, p := range n.Ready().Packets {
					var f ring.Frame
					if f.UnmarshalBinary(p.Data) == nil && f.Type == ring.FrameData && p.To == 3 {
						sent = append(sent, p)
					}
				}
			}
			st := n.Status()
			if st.Counters.EncodeFailures != 0 || st.Counters.BadTurns != 0 {
				t.Errorf("counters %+v: the token did not fit", st.Counters)
			}
			if !tc.accept {
				if st.Counters.BadInput == 0 {
					t.Error("a refused token was not counted as bad input")
				}
				return
			}
			if len(sent) == 0 {
				t.Fatalf("the token was never passed on: %+v", st)
			}
			var f ring.Frame
			if err := f.UnmarshalBinary(sent[0].Data); err != nil {
				t.Fatal(err)
			}
			if f.Count != 1 {
				t.Fatalf("the token went out in %d frames; the Holder should have trimmed it to one", f.Count)
			}
			var out ring.Message
			if err := out.UnmarshalBinary(f.Payload); err != nil {
				t.Fatalf("the token passed on does not decode: %v", err)
			}
			foreign := 0
			for _, c := range out.Carriages {
				if c.Kind >= 100 && c.Kind < ring.KindCoreFirst {
					foreign++
				}
			}
			if foreign != ringstate.MaxForeignCarriages {
				t.Errorf("%d unknown carriages passed on, want %d", foreign, ringstate.MaxForeignCarriages)
			}
		})
	}
}

package ringtest

import (
	"testing"
)

func TestSmoke(t *testing.T) {
	s := New(Options{Seed: 1, N: 3, Link: LAN, Trace: true})
	s.StartAll()
	s.Run(400_000)
	for _, l := range s.Transcript() {
		t.Log(l)
	}
	if err := s.Converged(); err != nil {
		t.Fatal(err)
	}
	s.Crash(2)
	s.Run(300_000)
	if err := s.Converged(); err != nil {
		t.Fatal(err)
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	for _, l := range s.Transcript() {
		t.Log(l)
	}
}

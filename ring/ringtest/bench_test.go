package ringtest

import "testing"

// BenchmarkSteadyState measures the simulator plus three nodes' cores per
// simulated second of steady state (default timers, 8 VIPs, two paths):
// an upper bound on the core's CPU per node-second.
func BenchmarkSteadyState(b *testing.B) {
	s := New(Options{Seed: 1, N: 3, Paths: 2, Link: LAN, NoChecks: true})
	s.StartAll()
	s.RunUntilConverged(10_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Run(1_000_000)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/3/1e9*100, "%core/node")
}

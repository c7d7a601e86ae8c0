@testable import IdemServer
import Testing

/// The balancer's decisions, window by window, against hand-made samples.
@Suite struct LoopBalancerTests {
    /// The loop serving everything is saturated and a core idles.
    static let saturated = LoopBalancer.Sample(commandsPerSecond: 100_000, busiestLoopUtilization: 0.98, idleCores: 0.7)

    static func sample(_ rate: Double, utilization: Double = 0.98, idle: Double = 0.7) -> LoopBalancer.Sample {
        .init(commandsPerSecond: rate, busiestLoopUtilization: utilization, idleCores: idle)
    }

    @Test func growsWhenSaturatedWithASpareCoreAndKeepsAGain() {
        var balancer = LoopBalancer(maxLoops: 2)
        #expect(balancer.activeLoops == 1)
        #expect(balancer.observe(Self.saturated) == .use(loops: 2))
        // The window in which connections moved is not judged.
        #expect(balancer.observe(Self.sample(60_000)) == .stay)
        #expect(balancer.observe(Self.sample(125_000)) == .stay)
        #expect(balancer.activeLoops == 2)
    }

    @Test func neverGrowsWithoutASpareCore() {
        var balancer = LoopBalancer(maxLoops: 2)
        for _ in 0..<50 {
            #expect(balancer.observe(Self.sample(90_000, idle: 0.1)) == .stay)
        }
        #expect(balancer.activeLoops == 1)
    }

    @Test func neverGrowsBelowSaturation() {
        var balancer = LoopBalancer(maxLoops: 4)
        for _ in 0..<50 {
            #expect(balancer.observe(Self.sample(90_000, utilization: 0.6)) == .stay)
        }
        #expect(balancer.activeLoops == 1)
    }

    /// A grow trial that does not pay is undone, and each failure doubles
    /// the wait before the next try.
    @Test func revertsAFruitlessGrowAndBacksOff() {
        var balancer = LoopBalancer(maxLoops: 2)
        var trialsAt: [Int] = []
        for window in 0..<170 {
            let decision = balancer.observe(Self.sample(balancer.activeLoops == 1 ? 100_000 : 80_000))
            if decision == .use(loops: 2) { trialsAt.append(window) }
            if decision == .use(loops: 1) { #expect(trialsAt.last == window - 2) }
        }
        #expect(balancer.activeLoops == 1)
        // Trial, settle, judge, then a wait of 10, 20, 40, 80 windows.
        #expect(zip(trialsAt.dropFirst(), trialsAt).map { $0 - $1 } == [12, 22, 42, 82])
    }

    @Test func keepsOneLoopFewerWhenThroughputHolds() {
        var balancer = LoopBalancer(maxLoops: 2)
        #expect(balancer.observe(Self.saturated) == .use(loops: 2))
        #expect(balancer.observe(Self.sample(100_000)) == .stay)
        #expect(balancer.observe(Self.sample(150_000, utilization: 0.5, idle: 0.5)) == .stay)
        // Kept; after the shrink wait a trial of one loop fewer starts.
        var decisions: [LoopBalancer.Decision] = []
        for _ in 0..<LoopBalancer.initialShrinkBackoff {
            decisions.append(balancer.observe(Self.sample(150_000, utilization: 0.5, idle: 0.5)))
        }
        #expect(decisions == Array(repeating: .stay, count: LoopBalancer.initialShrinkBackoff - 1) + [.use(loops: 1)])
        #expect(balancer.observe(Self.sample(120_000, idle: 0.1)) == .stay)
        // One loop serves 98 % as much: kept, as one loop costs less CPU.
        #expect(balancer.observe(Self.sample(147_000, idle: 0.1)) == .stay)
        #expect(balancer.activeLoops == 1)
    }

    @Test func undoesAShrinkThatCosts() {
        var balancer = LoopBalancer(maxLoops: 2)
        _ = balancer.observe(Self.saturated)
        _ = balancer.observe(Self.sample(100_000))
        _ = balancer.observe(Self.sample(150_000, utilization: 0.5))
        var shrinkTrialsAt: [Int] = []
        for window in 0..<450 {
            let rate = balancer.activeLoops == 2 ? 150_000.0 : 100_000
            switch balancer.observe(Self.sample(rate, utilization: 0.5)) {
            case .use(loops: 1): shrinkTrialsAt.append(window)
            case .use(let loops): #expect(loops == 2 && shrinkTrialsAt.last == window - 2)
            case .stay: break
            }
        }
        // The first after the initial wait (50 windows), then waits of 50,
        // 100 and 200 (plus the 2 windows of each trial).
        #expect(shrinkTrialsAt == [49, 101, 203, 405])
        #expect(balancer.activeLoops == 2)
    }

    @Test func lightLoadGoesBackToOneLoop() {
        var balancer = LoopBalancer(maxLoops: 3)
        _ = balancer.observe(Self.saturated)
        _ = balancer.observe(Self.sample(100_000))
        _ = balancer.observe(Self.sample(150_000))
        #expect(balancer.activeLoops == 2)
        #expect(balancer.observe(Self.sample(10, utilization: 0.01)) == .use(loops: 1))
        #expect(balancer.observe(Self.sample(10, utilization: 0.01)) == .stay)
        // A new burst is tried at once: the backoffs were reset.
        #expect(balancer.observe(Self.saturated) == .use(loops: 2))
    }

    @Test func growsOneLoopAtATimeUpToTheMaximum() {
        var balancer = LoopBalancer(maxLoops: 3)
        var rate = 100_000.0
        var counts: [Int] = []
        for _ in 0..<12 {
            if case .use(let loops) = balancer.observe(Self.sample(rate)) { counts.append(loops) }
            rate = 100_000 * Double(balancer.activeLoops)
        }
        #expect(counts.prefix(2) == [2, 3])
        #expect(counts.allSatisfy { (1...3).contains($0) })
    }

    @Test func oneLoopNeverChanges() {
        var balancer = LoopBalancer(maxLoops: 1)
        for _ in 0..<20 { #expect(balancer.observe(Self.saturated) == .stay) }
    }

    @Test func readsIdleTimeFromProcStat() {
        let text = Array("cpu  4705 150 1120 16250 520 0 30 0 0 0\ncpu0 2000 75 560 8125 260 0 15 0 0 0\n".utf8)
        #expect(LoopAssignment.parseIdleTicks(text[...]) == 16_770)
        #expect(LoopAssignment.parseIdleTicks(Array("intr 1 2 3\n".utf8)[...]) == nil)
        #expect(LoopAssignment.parseIdleTicks(Array("cpu 1 2\n".utf8)[...]) == nil)
        #expect(LoopAssignment.machineIdleTicks() != nil)
    }
}

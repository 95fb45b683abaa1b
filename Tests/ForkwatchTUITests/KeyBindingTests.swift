import ForkwatchCore
import Testing

@testable import ForkwatchTUI

/// The key table itself: what it marks as acting on the master is refused in a replay and
/// does its job live; no key means two things at once.
@Suite struct KeyBindingTests {
    static let keysActingOnTheMaster: [(DashboardKey, KeyAction)] = KeyBinding.all
        .flatMap(\.keys).filter { $0.action.actsOnMaster }.map { ($0.key, $0.action) }

    /// Pins the table: a key that changes the master and is not marked would act on a replay.
    @Test func theKeysActingOnTheMasterAreTheSignalScaleAndReloadKeys() {
        #expect(
            Self.keysActingOnTheMaster.map(\.0)
                == ["t", "h", "i", "k", "+", "=", "-", "r"].map { DashboardKey.character($0) })
    }

    @Test(arguments: keysActingOnTheMaster)
    func aReplayRefusesIt(key: DashboardKey, action: KeyAction) {
        var model = Fixture.demo(mode: .replay)
        model.press(.down)
        #expect(model.selectedPid == 4213)
        #expect(model.press(key) == [])
        #expect(model.currentMessage == DashboardModel.replayIsReadOnly)
        #expect(model.prompt == nil)
        #expect(model.press(.character("y")) == [], "no question was asked")
    }

    @Test(arguments: keysActingOnTheMaster)
    func aLiveMasterGetsItsCommand(key: DashboardKey, action: KeyAction) {
        var model = Fixture.demo()
        model.press(.down)
        #expect(model.selectedPid == 4213)
        let commands = model.press(key)
        switch action {
        case .signal(let signal):
            #expect(commands == [.signal(pid: 4213, signal: signal)])
        case .askKill:
            #expect(commands == [], "asks first")
            #expect(model.press(.character("y")) == [.signal(pid: 4213, signal: .kill)])
        case .scale(let delta):
            #expect(commands == [.scale(service: "scheduler", workers: 4 + delta)])
        case .reload:
            #expect(commands == [.reload])
        default:
            Issue.record("\(action) acts on the master but this test does not know its command")
        }
        #expect(model.currentMessage != DashboardModel.replayIsReadOnly)
    }

    @Test(arguments: [DashboardModel.Mode.live, .replay])
    func noKeyIsBoundTwiceInAMode(mode: DashboardModel.Mode) {
        let keys = KeyBinding.all.filter { $0.works(in: mode) }.flatMap { $0.keys.map(\.key) }
        let repeated = keys.enumerated().filter { index, key in keys[..<index].contains(key) }.map(\.element)
        #expect(repeated.isEmpty, "bound twice in \(mode): \(repeated)")
        #expect(keys.count > 20)
    }

    @Test(arguments: [DashboardModel.Mode.live, .replay])
    func everyFooterKeyIsInTheHelpToo(mode: DashboardModel.Mode) {
        let shown = KeyBinding.all.filter { $0.works(in: mode) && $0.footer != nil }
        #expect(!shown.isEmpty)
        #expect(shown.allSatisfy { $0.help != nil }, "a footer key without a help line")
    }
}

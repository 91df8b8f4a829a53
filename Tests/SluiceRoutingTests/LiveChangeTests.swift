import Testing
@testable import SluiceRouting

@Suite("Live changes and status views")
struct LiveChangeTests {
    let base = RouteTable(routes: [
        Route(name: "checkout", rules: [Rule(conditions: [], target: .split(Split(backends: [v3, v1], weights: [1, 1])))],
              target: .split(Split(backends: [v2, v1], weights: [5, 95])), sticky: Sticky(key: .cookie("uid"))),
        Route(name: "api", target: .blueGreen(BlueGreen(active: blue, preview: green, previewHeader: "x-preview"))),
        Route(name: "default", target: .backend(v1)),
    ], backendNames: backendNames)

    func weightsError(_ route: String, _ weights: [String: Int]) -> LiveChangeError? {
        do {
            _ = try base.settingWeights(routeNamed: route, weights: weights)
            return nil
        } catch {
            return error
        }
    }

    func switchError(_ route: String, _ to: String?) -> LiveChangeError? {
        do {
            _ = try base.switching(routeNamed: route, to: to)
            return nil
        } catch {
            return error
        }
    }

    @Test func settingWeightsKeepsTheOrderAndTheRest() throws {
        let changed = try base.settingWeights(route: RouteID(0), weights: ["checkout-v1": 90, "checkout-v2": 10])
        let route = changed[RouteID(0)]
        guard case .split(let split) = route.target else { Issue.record("not a split"); return }
        #expect(split.backends == [v2, v1], "configured order, not the body's or sorted order")
        #expect(split.weights == [10, 90])
        #expect(split.total == 100)
        #expect(route.weights?.map(\.backend) == [v2, v1])
        #expect(route.weights?.map(\.weight) == [10, 90])
        #expect(route.sticky == base[RouteID(0)].sticky)
        #expect(route.rules.count == 1)
        #expect(changed.weights(of: RouteID(0))?.map(\.backend) == ["checkout-v2", "checkout-v1"])
        #expect(changed.backendNames == base.backendNames)
        #expect(changed.routes.map(\.name) == ["checkout", "api", "default"])
        // The original is untouched.
        #expect(base[RouteID(0)].weights?.map(\.weight) == [5, 95])
        // Zero weights are fine while one is positive.
        let allIn = try base.settingWeights(routeNamed: "checkout", weights: ["checkout-v1": 0, "checkout-v2": 3])
        #expect(allIn.decideWithoutDrawing(facts("GET", "/", [("cookie", "uid=u1")])) != nil)
    }

    @Test func weightsErrors() {
        #expect(weightsError("nosuch", [:]) == .unknownRoute("nosuch"))
        #expect(weightsError("api", ["api-blue": 1]) == .notASplit(route: "api", target: "blueGreen"))
        #expect(weightsError("default", ["checkout-v1": 1]) == .notASplit(route: "default", target: "backend"))
        #expect(weightsError("checkout", ["checkout-v1": 90, "checkout-v2": 5, "nosuch": 5]) == .unknownBackend("nosuch"))
        #expect(weightsError("checkout", ["checkout-v1": 90, "checkout-v2": 5, "checkout-v3": 5])
                == .backendNotInSplit(backend: "checkout-v3", route: "checkout"), "v3 is only in a rule's split")
        #expect(weightsError("checkout", ["checkout-v1": 100]) == .missingBackend(backend: "checkout-v2", route: "checkout"))
        #expect(weightsError("checkout", [:]) == .missingBackend(backend: "checkout-v2", route: "checkout"))
        #expect(weightsError("checkout", ["checkout-v1": 101, "checkout-v2": -1])
                == .invalidWeights(route: "checkout", reason: "the weight of 'checkout-v2' is -1; weights must be >= 0"))
        #expect(weightsError("checkout", ["checkout-v1": 0, "checkout-v2": 0])
                == .invalidWeights(route: "checkout", reason: "the weights sum to 0; at least one must be positive"))
        #expect(weightsError("checkout", ["checkout-v1": .max, "checkout-v2": 1])
                == .invalidWeights(route: "checkout", reason: "the weights are too large to add up"))
        #expect(throws: LiveChangeError.unknownRoute("#7")) {
            try base.settingWeights(route: RouteID(7), weights: [:])
        }
    }

    @Test func switchingSwapsActiveAndPreview() throws {
        for to in [nil, "api-green"] as [String?] {
            let switched = try base.switching(routeNamed: "api", to: to)
            #expect(switched[RouteID(1)].blueGreen == BlueGreen(active: green, preview: blue, previewHeader: "x-preview"))
            #expect(switched[RouteID(0)].weights?.map(\.weight) == [5, 95], "other routes unchanged")
            #expect(switched[RouteID(2)].targetKind == "backend")
            let api = table(switched[RouteID(1)])
            #expect(api.decideWithoutDrawing(facts())?.backend == green)
            #expect(api.decideWithoutDrawing(facts("GET", "/", [("x-preview", "1")]))?.backend == blue)
            let back = try switched.switching(route: RouteID(1), to: nil)
            #expect(back[RouteID(1)].blueGreen == base[RouteID(1)].blueGreen)
        }
        let same = try base.switching(routeNamed: "api", to: "api-blue")
        #expect(same[RouteID(1)].blueGreen == base[RouteID(1)].blueGreen)
    }

    @Test func switchErrors() {
        #expect(switchError("nosuch", nil) == .unknownRoute("nosuch"))
        #expect(switchError("checkout", nil) == .notBlueGreen(route: "checkout", target: "split"))
        #expect(switchError("default", "checkout-v1") == .notBlueGreen(route: "default", target: "backend"))
        #expect(switchError("api", "nosuch") == .unknownBackend("nosuch"))
        #expect(switchError("api", "checkout-v1") == .backendNotInPair(backend: "checkout-v1", route: "api"))
        #expect(throws: LiveChangeError.unknownRoute("#3")) {
            try base.switching(route: RouteID(3), to: nil)
        }
    }

    @Test func errorMessagesAreOneLineAndNameTheCulprit() {
        let messages: [(LiveChangeError, String)] = [
            (.unknownRoute("x"), "unknown route 'x'"),
            (.notASplit(route: "api", target: "blueGreen"), "route 'api' is not a split (its target is blueGreen)"),
            (.notBlueGreen(route: "checkout", target: "split"), "route 'checkout' is not blue-green (its target is split)"),
            (.unknownBackend("nosuch"), "unknown backend 'nosuch'"),
            (.backendNotInSplit(backend: "b", route: "r"), "backend 'b' is not in the split of route 'r'"),
            (.missingBackend(backend: "b", route: "r"), "weights for route 'r' must name every backend of its split: 'b' is missing"),
            (.invalidWeights(route: "r", reason: "why"), "invalid weights for route 'r': why"),
            (.backendNotInPair(backend: "b", route: "r"), "backend 'b' is neither the active nor the preview backend of route 'r'"),
        ]
        for (error, message) in messages {
            #expect(error.description == message)
            #expect(!message.contains("\n"))
        }
    }

    @Test func statusViews() {
        #expect(base.routes.map(\.targetKind) == ["split", "blueGreen", "backend"])
        #expect(base[RouteID(1)].weights == nil)
        #expect(base.weights(of: RouteID(2)) == nil)
        #expect(base[RouteID(0)].blueGreen == nil)
        #expect(base[RouteID(0)].backends == [v2, v1, v3])
        #expect(base[RouteID(1)].backends == [blue, green])
        #expect(base.backendName(v3) == "checkout-v3")
        #expect(base.backendName(BackendID(99)) == "backend#99")
        #expect(Sticky(key: .header("X-User")).key == .header("x-user"))
        #expect(BlueGreen(active: blue, preview: green, previewHeader: "X-Preview").previewHeader == "x-preview")
    }
}

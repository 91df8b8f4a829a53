import Yams

// Node tree → `ConfigFile`. Each decoder reads the keys it knows, reports the rest, and keeps
// going: a problem in one entry never hides the problems of the next.

extension ConfigFile {
    static func decode(_ root: Node?, _ diagnostics: inout Diagnostics) -> ConfigFile? {
        guard let root else {
            diagnostics.error("the file is empty: a config needs 'listen', 'backends' and 'routes'", at: .start)
            return nil
        }
        let node = ConfigNode(root, slot: "the top level", fallback: .start)
        guard let top = node.mapping(&diagnostics, scope: .topLevel,
                                     allowedKeys: ["listen", "admin", "state", "backends", "routes", "server"])
        else { return nil }

        var file = ConfigFile(at: top.at, backends: [], routes: [])
        if let listen = top["listen"] {
            if let entries = listen.list(&diagnostics, allowSingle: true) {
                if entries.isEmpty { diagnostics.error("'listen' must have at least one entry", at: listen.at) }
                let decoded = entries.enumerated().compactMap { index, entry in
                    ListenEntry.decode(entry, number: index + 1, &diagnostics)
                }
                file.listen = Located(value: decoded, at: listen.at)
            }
        } else {
            diagnostics.error("missing 'listen': at least one listener is required", at: top.at)
        }
        file.admin = top["admin"].flatMap { AdminEntry.decode($0, &diagnostics) }
        file.state = top["state"]?.string(&diagnostics, expected: "a path")

        if let backends = top["backends"] {
            if let map = backends.mapping(&diagnostics, scope: Scope(name: "backends")) {
                if map.entries.isEmpty { diagnostics.error("'backends' must define at least one backend", at: map.at) }
                file.backends = map.entries.compactMap { BackendEntry.decode($0, in: map, &diagnostics) }
            }
        } else {
            diagnostics.error("missing 'backends': at least one backend is required", at: top.at)
        }

        if let routes = top["routes"] {
            if let entries = routes.list(&diagnostics) {
                if entries.isEmpty { diagnostics.error("'routes' must have at least one route", at: routes.at) }
                file.routes = entries.enumerated().compactMap { index, entry in
                    RouteEntry.decode(entry, number: index + 1, &diagnostics)
                }
            }
        } else {
            diagnostics.error("missing 'routes': at least one route is required", at: top.at)
        }
        file.server = top["server"].flatMap { ServerEntry.decode($0, &diagnostics) }
        return file
    }
}

extension ListenEntry {
    static func decode(_ node: ConfigNode, number: Int, _ diagnostics: inout Diagnostics) -> ListenEntry? {
        let scope = Scope(name: "listen entry \(number)")
        switch node.node {
        case .scalar:
            guard let address = node.string(&diagnostics, expected: "an address") else { return nil }
            return ListenEntry(at: node.at, scope: scope, address: address)
        case .mapping:
            guard let map = node.mapping(&diagnostics, scope: scope, allowedKeys: ["address", "tls", "h2c"])
            else { return nil }
            var entry = ListenEntry(at: map.at, scope: scope)
            entry.address = map["address"]?.string(&diagnostics, expected: "an address")
            if map["address"] == nil { diagnostics.error("\(scope.name) has no 'address'", at: map.at) }
            entry.tls = map["tls"].flatMap { TLSEntry.decode($0, scope: scope.nested("tls"), &diagnostics) }
            entry.h2c = map["h2c"]?.bool(&diagnostics)
            return entry
        default:
            node.typeError(expected: "an address or a map", &diagnostics)
            return nil
        }
    }
}

extension TLSEntry {
    static func decode(_ node: ConfigNode, scope: Scope, _ diagnostics: inout Diagnostics) -> TLSEntry? {
        guard let map = node.mapping(&diagnostics, scope: scope, allowedKeys: ["cert", "key"]) else { return nil }
        for key in ["cert", "key"] where map[key] == nil {
            diagnostics.error("\(scope.name) has no '\(key)'", at: map.at)
        }
        return TLSEntry(at: map.at, cert: map["cert"]?.string(&diagnostics, expected: "a path"),
                        key: map["key"]?.string(&diagnostics, expected: "a path"))
    }
}

extension AdminEntry {
    static func decode(_ node: ConfigNode, _ diagnostics: inout Diagnostics) -> AdminEntry? {
        guard let map = node.mapping(&diagnostics, scope: Scope(name: "admin"), allowedKeys: ["socket", "http"])
        else { return nil }
        if map.entries.isEmpty {
            diagnostics.error("'admin' needs 'socket' or 'http' (leave 'admin' out for no admin API)", at: map.at)
        }
        return AdminEntry(at: map.at, socket: map["socket"]?.string(&diagnostics, expected: "a path"),
                          http: map["http"]?.string(&diagnostics, expected: "an address"))
    }
}

extension BackendEntry {
    static func decode(_ entry: ConfigMapping.Entry, in backends: ConfigMapping,
                       _ diagnostics: inout Diagnostics) -> BackendEntry? {
        let scope = Scope(name: "backend '\(entry.key.value)'")
        let node = backends.value(of: entry, slot: scope.name)
        guard let map = node.mapping(&diagnostics, scope: scope,
                                     allowedKeys: ["version", "endpoints", "connectTimeout", "timeout", "readTimeout", "protocol",
                                                   "maxConnections", "idleTimeout"])
        else { return BackendEntry(name: entry.key, scope: scope) }

        var backend = BackendEntry(name: entry.key, scope: scope)
        backend.version = map["version"]?.string(&diagnostics)
        if let endpoints = map["endpoints"] {
            backend.endpoints = endpoints.stringList(&diagnostics, allowSingle: true).map {
                Located(value: $0, at: endpoints.at)
            }
        }
        for key in ["version", "endpoints"] where map[key] == nil {
            diagnostics.error("\(scope.name) has no '\(key)'", at: entry.key.at)
        }
        backend.connectTimeout = map["connectTimeout"]?.string(&diagnostics, expected: "a duration")
        backend.timeout = map["timeout"]?.string(&diagnostics, expected: "a duration")
        backend.readTimeout = map["readTimeout"]?.string(&diagnostics, expected: "a duration")
        backend.upstreamProtocol = map["protocol"]?.string(&diagnostics, expected: "http1 or h2")
        backend.maxConnections = map["maxConnections"]?.integer(&diagnostics)
        backend.idleTimeout = map["idleTimeout"]?.string(&diagnostics, expected: "a duration")
        return backend
    }
}

extension RouteEntry {
    static let targetKeys = ["backend", "split", "blueGreen"]

    static func decode(_ node: ConfigNode, number: Int, _ diagnostics: inout Diagnostics) -> RouteEntry? {
        // The name first, so that every later message can say which route it is about.
        var name: Located<String>?
        var scope = Scope(name: "route \(number)")
        if case .mapping(let raw) = node.node, let nameNode = raw.first(where: { $0.key.string == "name" })?.value {
            name = ConfigNode(nameNode, slot: "'name' in route \(number)", fallback: node.at).string(&diagnostics)
            if let name { scope = Scope(name: "route '\(name.value)'") }
        }
        let keys = ["name", "match", "rules", "sticky", "mirror"] + targetKeys
        guard let map = node.mapping(&diagnostics, scope: scope, allowedKeys: keys) else { return nil }
        if map["name"] == nil { diagnostics.error("route \(number) has no 'name'", at: map.at) }

        var route = RouteEntry(at: map.at, scope: scope, name: name, rules: [], targets: [],
                               fingerprint: RouteFingerprint.render(node.node))
        route.match = map["match"].flatMap { MatchEntry.decode($0, scope: scope.nested("match"), &diagnostics) }
        if let rules = map["rules"]?.list(&diagnostics) {
            route.rules = rules.enumerated().compactMap { index, rule in
                RuleEntry.decode(rule, scope: scope.nested("rule \(index + 1)"), &diagnostics)
            }
        }
        route.targets = TargetEntry.decode(in: map, owner: scope, keys: targetKeys, &diagnostics)
        route.sticky = map["sticky"].flatMap { StickyEntry.decode($0, scope: scope.nested("sticky"), &diagnostics) }
        route.mirror = map["mirror"].flatMap { MirrorEntry.decode($0, scope: scope.nested("mirror"), &diagnostics) }
        return route
    }
}

extension MatchEntry {
    static func decode(_ node: ConfigNode, scope: Scope, _ diagnostics: inout Diagnostics) -> MatchEntry? {
        guard let map = node.mapping(&diagnostics, scope: scope,
                                     allowedKeys: ["host", "path", "pathPrefix", "methods"]) else { return nil }
        var match = MatchEntry()
        match.host = map["host"]?.string(&diagnostics)
        match.path = map["path"]?.string(&diagnostics)
        match.pathPrefix = map["pathPrefix"]?.string(&diagnostics)
        if let methods = map["methods"] {
            match.methods = methods.stringList(&diagnostics, allowSingle: true).map { Located(value: $0, at: methods.at) }
        }
        return match
    }
}

extension RuleEntry {
    static func decode(_ node: ConfigNode, scope: Scope, _ diagnostics: inout Diagnostics) -> RuleEntry? {
        guard let map = node.mapping(&diagnostics, scope: scope,
                                     allowedKeys: ["when", "backend", "split", "blueGreen"]) else { return nil }
        var rule = RuleEntry(at: map.at, scope: scope, targets: [])
        if let when = map["when"] {
            rule.when = WhenEntry.decode(when, rule: scope, &diagnostics)
        } else {
            diagnostics.error("\(scope.name) has no 'when' (a rule without conditions always applies: "
                              + "put its target on the route instead)", at: map.at)
        }
        if let blueGreen = map.keyLocation("blueGreen") {
            diagnostics.error("a rule cannot target 'blueGreen' (use 'backend' or 'split'; blueGreen belongs "
                              + "on the route)", at: blueGreen)
        }
        rule.targets = TargetEntry.decode(in: map, owner: scope, keys: ["backend", "split"],
                                          reportMissing: map.keyLocation("blueGreen") == nil, &diagnostics)
        return rule
    }
}

extension WhenEntry {
    static func decode(_ node: ConfigNode, rule: Scope, _ diagnostics: inout Diagnostics) -> WhenEntry? {
        if node.isNull {
            diagnostics.error("'when' in \(rule.name) has no conditions", at: node.at)
            return nil
        }
        guard let map = node.mapping(&diagnostics, scope: rule.nested("when"),
                                     allowedKeys: ["headers", "cookies", "query"]) else { return nil }
        var when = WhenEntry(at: map.at, conditions: [])
        var empty = true
        for (key, subject) in [("headers", ConditionEntry.Subject.header), ("cookies", .cookie), ("query", .query)] {
            guard let group = map[key] else { continue }
            guard let names = group.mapping(&diagnostics, scope: rule.nested("when")) else {
                empty = false
                continue
            }
            for entry in names.entries {
                empty = false
                let scope = Scope(name: "\(subject.rawValue) '\(entry.key.value)' in \(rule.name)")
                let value = names.value(of: entry, slot: scope.name)
                if let condition = ConditionEntry.decode(value, subject: subject, name: entry.key, scope: scope,
                                                         &diagnostics) {
                    when.conditions.append(condition)
                }
            }
        }
        // Not when the only keys were unknown ones: those were reported already.
        if empty, case .mapping(let raw) = node.node, raw.count == map.entries.count {
            diagnostics.error("'when' in \(rule.name) has no conditions", at: map.at)
        }
        return when
    }
}

extension ConditionEntry {
    static func decode(_ node: ConfigNode, subject: Subject, name: Located<String>, scope: Scope,
                       _ diagnostics: inout Diagnostics) -> ConditionEntry? {
        let expected = "a string, {regex: RE} or {present: true}"
        switch node.node {
        case .scalar:
            guard let exact = node.string(&diagnostics, expected: expected) else { return nil }
            return ConditionEntry(subject: subject, name: name, value: .exact(exact))
        case .mapping:
            guard let map = node.mapping(&diagnostics, scope: scope, allowedKeys: ["regex", "present"]) else { return nil }
            if map.entries.count > 1 {
                diagnostics.error("\(scope.name) takes one of 'regex' or 'present', not both", at: map.at)
                return nil
            }
            if case .mapping(let raw) = node.node, raw.isEmpty {
                node.typeError(expected: expected, &diagnostics)
                return nil
            }
            if let regex = map["regex"] {
                return regex.string(&diagnostics).map { ConditionEntry(subject: subject, name: name, value: .regex($0)) }
            }
            guard let present = map["present"]?.bool(&diagnostics) else { return nil }
            guard present.value else {
                diagnostics.error("'present' in \(scope.name) must be true (a condition cannot require absence)",
                                  at: present.at)
                return nil
            }
            return ConditionEntry(subject: subject, name: name, value: .present)
        default:
            node.typeError(expected: expected, &diagnostics)
            return nil
        }
    }
}

extension TargetEntry {
    /// The target keys of a route or rule. Exactly one must be present; reports none or several
    /// (at the second), and returns every one found so their backend names still get checked.
    static func decode(in map: ConfigMapping, owner: Scope, keys: [String], reportMissing: Bool = true,
                       _ diagnostics: inout Diagnostics) -> [TargetEntry] {
        let present = map.entries.filter { keys.contains($0.key.value) }
        if present.isEmpty && reportMissing {
            let options = keys.count == 2 ? "'backend' or 'split'" : "one of 'backend', 'split' or 'blueGreen'"
            diagnostics.error("\(owner.name) has no target (set \(options))", at: map.at)
        } else if present.count > 1 {
            let names = present.map { "'\($0.key.value)'" }
            let listed = names.dropLast().joined(separator: ", ") + " and " + names[names.count - 1]
            diagnostics.error("\(owner.name) has more than one target (\(listed)); set exactly one",
                              at: present[1].key.at)
        }
        return present.compactMap { entry in
            let node = map.value(of: entry)
            switch entry.key.value {
            case "backend":
                return node.string(&diagnostics, expected: "a backend name").map(TargetEntry.backend)
            case "split":
                return SplitEntry.decode(node, scope: owner.nested("split"), &diagnostics).map(TargetEntry.split)
            default:
                return BlueGreenEntry.decode(node, scope: owner.nested("blueGreen"), &diagnostics)
                    .map(TargetEntry.blueGreen)
            }
        }
    }
}

extension SplitEntry {
    static func decode(_ node: ConfigNode, scope: Scope, _ diagnostics: inout Diagnostics) -> SplitEntry? {
        guard let map = node.mapping(&diagnostics, scope: scope) else { return nil }
        if map.entries.isEmpty { diagnostics.error("\(scope.name) has no backends", at: map.at) }
        var weights: [Weight] = []
        for entry in map.entries {
            let value = map.value(of: entry, slot: "weight of '\(entry.key.value)' in \(scope.name)")
            if let weight = value.integer(&diagnostics) {
                weights.append(Weight(backend: entry.key, weight: weight))
            }
        }
        return weights.count == map.entries.count ? SplitEntry(at: map.at, scope: scope, weights: weights) : nil
    }
}

extension BlueGreenEntry {
    static func decode(_ node: ConfigNode, scope: Scope, _ diagnostics: inout Diagnostics) -> BlueGreenEntry? {
        guard let map = node.mapping(&diagnostics, scope: scope,
                                     allowedKeys: ["active", "preview", "previewHeader"]) else { return nil }
        for key in ["active", "preview"] where map[key] == nil {
            diagnostics.error("\(scope.name) has no '\(key)'", at: map.at)
        }
        return BlueGreenEntry(at: map.at, scope: scope,
                              active: map["active"]?.string(&diagnostics, expected: "a backend name"),
                              preview: map["preview"]?.string(&diagnostics, expected: "a backend name"),
                              previewHeader: map["previewHeader"]?.string(&diagnostics, expected: "a header name"))
    }
}

extension StickyEntry {
    static func decode(_ node: ConfigNode, scope: Scope, _ diagnostics: inout Diagnostics) -> StickyEntry? {
        guard let map = node.mapping(&diagnostics, scope: scope,
                                     allowedKeys: ["cookie", "header", "assign", "maxAge"]) else { return nil }
        return StickyEntry(at: map.at, scope: scope,
                           cookie: map["cookie"]?.string(&diagnostics, expected: "a cookie name"),
                           header: map["header"]?.string(&diagnostics, expected: "a header name"),
                           assign: map["assign"]?.bool(&diagnostics),
                           maxAge: map["maxAge"]?.string(&diagnostics, expected: "a duration"))
    }
}

extension MirrorEntry {
    static func decode(_ node: ConfigNode, scope: Scope, _ diagnostics: inout Diagnostics) -> MirrorEntry? {
        guard let map = node.mapping(&diagnostics, scope: scope,
                                     allowedKeys: ["backend", "percent", "methods", "stripHeaders", "maxBodyBytes"])
        else { return nil }
        var mirror = MirrorEntry(at: map.at, scope: scope)
        mirror.backend = map["backend"]?.string(&diagnostics, expected: "a backend name")
        if map["backend"] == nil { diagnostics.error("\(scope.name) has no 'backend'", at: map.at) }
        mirror.percent = map["percent"]?.number(&diagnostics)
        if let methods = map["methods"] {
            mirror.methods = methods.stringList(&diagnostics, allowSingle: true).map { Located(value: $0, at: methods.at) }
        }
        if let strip = map["stripHeaders"] {
            mirror.stripHeaders = strip.stringList(&diagnostics, allowSingle: true).map { Located(value: $0, at: strip.at) }
        }
        mirror.maxBodyBytes = map["maxBodyBytes"]?.integer(&diagnostics)
        return mirror
    }
}

extension ServerEntry {
    static func decode(_ node: ConfigNode, _ diagnostics: inout Diagnostics) -> ServerEntry? {
        guard let map = node.mapping(&diagnostics, scope: Scope(name: "server"),
                                     allowedKeys: ["idleTimeout", "drainTimeout", "maxHeaderBytes", "accessLog"])
        else { return nil }
        return ServerEntry(idleTimeout: map["idleTimeout"]?.string(&diagnostics, expected: "a duration"),
                           drainTimeout: map["drainTimeout"]?.string(&diagnostics, expected: "a duration"),
                           maxHeaderBytes: map["maxHeaderBytes"]?.integer(&diagnostics),
                           accessLog: map["accessLog"]?.bool(&diagnostics))
    }
}

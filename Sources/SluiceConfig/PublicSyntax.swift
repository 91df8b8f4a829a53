/// The config file's value syntaxes, for the command line's own options.
public enum ValueSyntax {
    /// `host:port`, IPv6 as `[::1]:8080`; nil when invalid.
    public static func address(_ text: String) -> SocketAddressSpec? {
        try? AddressSyntax.parse(text).get()
    }

    /// `250ms`, `5s`, `2m`, `1h`, `1.5s`; nil when invalid.
    public static func duration(_ text: String) -> Duration? {
        DurationSyntax.parse(text)
    }
}

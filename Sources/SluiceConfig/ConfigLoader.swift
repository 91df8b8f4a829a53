import Foundation
import SluiceRouting

/// YAML → model → validation → compiled `Configuration`.
///
/// Three stages, each reporting every problem it finds rather than stopping at the first:
/// 1. `YAMLSource`: text → YAML node tree with 1-based positions (a syntax error ends here);
/// 2. `ConfigFile.decode`: node tree → `ConfigFile`, the file's shape with a position for every
///    key and value (unknown keys, wrong types, missing required keys);
/// 3. `ConfigCompiler`: `ConfigFile` → `Configuration` (addresses, durations, paths, backend
///    references, weights, route names), building the immutable `RouteTable`.
/// Problems come out as `ConfigErrors`, sorted by line and column.
public enum ConfigLoader {
    /// Reads and compiles the file at `path`. `displayPath` is the name errors use
    /// (default: `path` as given).
    public static func load(path: String, displayPath: String? = nil) throws(ConfigErrors) -> Configuration {
        let file = displayPath ?? path
        func failure(_ message: String) -> ConfigErrors {
            ConfigErrors([ConfigError(file: file, line: 1, column: 1, message: message)])
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw failure("no such file")
        }
        guard !isDirectory.boolValue else { throw failure("is a directory, not a config file") }
        guard let data = FileManager.default.contents(atPath: path) else { throw failure("cannot read the file") }
        guard let text = String(data: data, encoding: .utf8) else { throw failure("the file is not UTF-8 text") }
        return try parse(text: text, path: path, displayPath: displayPath)
    }

    /// Compiles `text` as if read from `path` (relative paths in it resolve against `path`'s directory).
    public static func parse(text: String, path: String, displayPath: String? = nil) throws(ConfigErrors) -> Configuration {
        let workingDirectory = FileManager.default.currentDirectoryPath
        let absolutePath = path.isEmpty ? "" : PathResolution.absolute(path, from: workingDirectory)
        let directory = path.isEmpty ? workingDirectory : PathResolution.absolute("..", from: absolutePath)

        var diagnostics = Diagnostics()
        var configuration: Configuration?
        let root = YAMLSource.compose(text, &diagnostics)
        if diagnostics.isEmpty, let file = ConfigFile.decode(root, &diagnostics) {
            var compiler = ConfigCompiler(diagnostics: diagnostics, directory: directory)
            configuration = compiler.compile(file, path: absolutePath)
            diagnostics = compiler.diagnostics
        }
        guard let configuration, diagnostics.isEmpty else {
            let errors = diagnostics.errors(file: displayPath ?? (path.isEmpty ? "<config>" : path))
            throw ConfigErrors(errors)
        }
        return configuration
    }
}

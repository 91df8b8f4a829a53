import Foundation

/// Runs a command-line client (curl, openssl, h2load) to its end; each call gives the tool a time
/// limit in its arguments. `input` reaches its standard input from a temporary file rather than
/// a pipe written here: nothing to deadlock on while the tool's output waits to be read, and no
/// SIGPIPE for the test process should the tool give up early. Returns the exit status and what
/// the tool wrote to standard output (and to standard error too, with `errorsInOutput`).
func runTool(_ tool: String, _ args: [String], input: Data? = nil,
             errorsInOutput: Bool = true) throws -> (status: Int32, out: Data) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: tool)
    p.arguments = args
    let out = Pipe()
    p.standardOutput = out
    p.standardError = errorsInOutput ? out : FileHandle.nullDevice
    var inputFile: URL?
    defer { if let inputFile { try? FileManager.default.removeItem(at: inputFile) } }
    if let input {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-input-\(UUID().uuidString)")
        try input.write(to: file)
        inputFile = file
        p.standardInput = try FileHandle(forReadingFrom: file)
    } else {
        p.standardInput = FileHandle.nullDevice
    }
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, data)
}

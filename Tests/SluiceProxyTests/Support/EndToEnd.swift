import Testing

/// Every end-to-end suite nests in this one, which runs its tests one at a time: the tests use
/// a blocking socket client, and running them serially keeps them from starving the
/// cooperative thread pool (and keeps the 2-core machine's timing calm).
@Suite(.serialized) enum EndToEnd {}

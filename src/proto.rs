//! The contract: generated protobuf types and the embedded descriptor set.
//!
//! `proto/` is the single source of truth. The descriptor set compiled by
//! `build.rs` carries the `google.api.http` rules, the `required_scope`
//! options and the proto comments, so reflection, the scope table and the
//! HTTP surface are all derived from it rather than restated by hand.

use std::sync::LazyLock;

use prost_reflect::DescriptorPool;

/// Generated messages and the TimesheetService server and client.
pub mod timesheets {
    /// Package `timesheets.v1`.
    pub mod v1 {
        tonic::include_proto!("timesheets.v1");
    }
}

/// The encoded FileDescriptorSet of `proto/`, with imports and source info.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/timesheets_descriptor.bin"));

/// Fully-qualified name of the one application service.
pub const SERVICE_NAME: &str = "timesheets.v1.TimesheetService";

/// The decoded descriptor pool, built once: every lookup at request time
/// reads this shared pool instead of decoding descriptors again.
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
        // The bytes were produced by protox from the same build; failing to
        // decode them means the binary itself is corrupt.
        DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("embedded descriptor set produced by build.rs decodes")
    });
    &POOL
}

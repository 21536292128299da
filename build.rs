//! Compiles `proto/` with protox (no system `protoc` needed) into the generated
//! tonic/prost code and into `timesheets_descriptor.bin`, the FileDescriptorSet
//! the binary embeds. The set keeps source info and custom options, because
//! reflection, the scope table and (later) transcoding and OpenAPI all read it.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_file("timesheets/v1/timesheets.proto")?;
    std::fs::write(
        out_dir.join("timesheets_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .emit_rerun_if_changed(false)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

//! Compiles the gRPC API in `proto/` into Rust types, a descriptor set for
//! server reflection, and proto3-JSON serde impls for the batch mode.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/firstreply/v1/messages.proto",
    "proto/firstreply/v1/service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("firstreply_descriptor.bin");
    let well_known = protoc_bin_vendored::include_path()?;
    let well_known = well_known.to_str().ok_or("non-UTF-8 protoc include path")?;
    let includes = ["proto", well_known];

    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_protos(PROTOS, &includes)?;

    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".firstreply"])?;
    Ok(())
}

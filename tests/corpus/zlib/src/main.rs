use std::ffi::CStr;

fn main() {
    let data = b"hello, zlib";
    // SAFETY: zlib's C functions, called with a valid buffer and length.
    let (version, crc) = unsafe {
        let version = CStr::from_ptr(libz_sys::zlibVersion()).to_string_lossy().into_owned();
        let crc = libz_sys::crc32(0, data.as_ptr(), data.len() as libz_sys::uInt);
        (version, crc)
    };
    println!("zlib {version} crc32 {crc:08x}");
}

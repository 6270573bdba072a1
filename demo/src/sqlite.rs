//! A minimal SQLite binding that loads the system library at run time
//! (libsqlite3.so.0, /usr/lib/libsqlite3.dylib, winsqlite3.dll).
//!
//! Loading at run time keeps the crate dependency-free and lets it build
//! for every target without a SQLite to link against: the cross builds
//! (zig, mingw, build-std) need nothing beyond the platform's loader.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;

type Handle = *mut c_void;

#[cfg(unix)]
mod loader {
    use super::*;

    const RTLD_NOW: c_int = 2;

    #[cfg_attr(target_os = "linux", link(name = "dl"))]
    extern "C" {
        fn dlopen(filename: *const c_char, flag: c_int) -> Handle;
        fn dlsym(handle: Handle, symbol: *const c_char) -> Handle;
    }

    pub const NAMES: &[&str] = if cfg!(target_os = "macos") {
        &["/usr/lib/libsqlite3.dylib", "libsqlite3.dylib"]
    } else {
        &["libsqlite3.so.0", "libsqlite3.so"]
    };

    pub fn open(name: &CStr) -> Handle {
        unsafe { dlopen(name.as_ptr(), RTLD_NOW) }
    }

    pub fn symbol(library: Handle, name: &CStr) -> Handle {
        unsafe { dlsym(library, name.as_ptr()) }
    }
}

#[cfg(windows)]
mod loader {
    use super::*;

    #[link(name = "kernel32")]
    extern "system" {
        fn LoadLibraryA(name: *const c_char) -> Handle;
        fn GetProcAddress(module: Handle, name: *const c_char) -> Handle;
    }

    pub const NAMES: &[&str] = &["winsqlite3.dll", "sqlite3.dll"];

    pub fn open(name: &CStr) -> Handle {
        unsafe { LoadLibraryA(name.as_ptr()) }
    }

    pub fn symbol(library: Handle, name: &CStr) -> Handle {
        unsafe { GetProcAddress(library, name.as_ptr()) }
    }
}

const SQLITE_OK: c_int = 0;
const SQLITE_ROW: c_int = 100;
const SQLITE_DONE: c_int = 101;
const SQLITE_OPEN_READWRITE: c_int = 0x2;
const SQLITE_OPEN_CREATE: c_int = 0x4;
const SQLITE_TRANSIENT: isize = -1;

#[allow(non_snake_case)]
struct Api {
    open_v2: unsafe extern "C" fn(*const c_char, *mut Handle, c_int, *const c_char) -> c_int,
    close_v2: unsafe extern "C" fn(Handle) -> c_int,
    errmsg: unsafe extern "C" fn(Handle) -> *const c_char,
    exec: unsafe extern "C" fn(Handle, *const c_char, Handle, Handle, *mut *mut c_char) -> c_int,
    free: unsafe extern "C" fn(Handle),
    prepare_v2: unsafe extern "C" fn(Handle, *const c_char, c_int, *mut Handle, *mut *const c_char) -> c_int,
    step: unsafe extern "C" fn(Handle) -> c_int,
    finalize: unsafe extern "C" fn(Handle) -> c_int,
    column_int64: unsafe extern "C" fn(Handle, c_int) -> i64,
    column_text: unsafe extern "C" fn(Handle, c_int) -> *const u8,
    bind_text: unsafe extern "C" fn(Handle, c_int, *const c_char, c_int, isize) -> c_int,
    bind_int64: unsafe extern "C" fn(Handle, c_int, i64) -> c_int,
    busy_timeout: unsafe extern "C" fn(Handle, c_int) -> c_int,
    libversion: unsafe extern "C" fn() -> *const c_char,
}

fn load_api() -> Result<(Api, String), String> {
    let mut library = ptr::null_mut();
    let mut chosen = "";
    for name in loader::NAMES {
        let cname = CString::new(*name).expect("no NUL in library names");
        library = loader::open(&cname);
        if !library.is_null() {
            chosen = name;
            break;
        }
    }
    if library.is_null() {
        return Err(format!("SQLite library not found (tried {})", loader::NAMES.join(", ")));
    }
    macro_rules! sym {
        ($name:literal) => {{
            let cname = CString::new($name).expect("no NUL in symbol names");
            let address = loader::symbol(library, &cname);
            if address.is_null() {
                return Err(format!("{} lacks {}", chosen, $name));
            }
            // SAFETY: the symbol has the C signature of the field it fills.
            unsafe { std::mem::transmute::<Handle, _>(address) }
        }};
    }
    let api = Api {
        open_v2: sym!("sqlite3_open_v2"),
        close_v2: sym!("sqlite3_close_v2"),
        errmsg: sym!("sqlite3_errmsg"),
        exec: sym!("sqlite3_exec"),
        free: sym!("sqlite3_free"),
        prepare_v2: sym!("sqlite3_prepare_v2"),
        step: sym!("sqlite3_step"),
        finalize: sym!("sqlite3_finalize"),
        column_int64: sym!("sqlite3_column_int64"),
        column_text: sym!("sqlite3_column_text"),
        bind_text: sym!("sqlite3_bind_text"),
        bind_int64: sym!("sqlite3_bind_int64"),
        busy_timeout: sym!("sqlite3_busy_timeout"),
        libversion: sym!("sqlite3_libversion"),
    };
    Ok((api, chosen.to_string()))
}

/// Which SQLite library this machine has (for `doctor`).
pub fn library() -> Result<String, String> {
    let (api, name) = load_api()?;
    let version = unsafe { CStr::from_ptr((api.libversion)()) }.to_string_lossy().into_owned();
    Ok(format!("{name} {version}"))
}

pub enum Value {
    Int(i64),
    Text(String),
}

pub struct Db {
    api: Api,
    handle: Handle,
}

impl Db {
    pub fn open(path: &std::path::Path) -> Result<Db, String> {
        let (api, _) = load_api()?;
        let cpath = CString::new(path.to_string_lossy().as_bytes()).map_err(|_| "NUL in path".to_string())?;
        let mut handle = ptr::null_mut();
        let rc = unsafe { (api.open_v2)(cpath.as_ptr(), &mut handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, ptr::null()) };
        let db = Db { api, handle };
        if rc != SQLITE_OK {
            return Err(format!("cannot open {}: {}", path.display(), db.error()));
        }
        unsafe { (db.api.busy_timeout)(db.handle, 5000) };
        Ok(db)
    }

    fn error(&self) -> String {
        if self.handle.is_null() {
            return "out of memory".into();
        }
        unsafe { CStr::from_ptr((self.api.errmsg)(self.handle)) }.to_string_lossy().into_owned()
    }

    pub fn exec(&self, sql: &str) -> Result<(), String> {
        let csql = CString::new(sql).map_err(|_| "NUL in SQL".to_string())?;
        let mut message: *mut c_char = ptr::null_mut();
        let rc = unsafe { (self.api.exec)(self.handle, csql.as_ptr(), ptr::null_mut(), ptr::null_mut(), &mut message) };
        if rc != SQLITE_OK {
            let text = if message.is_null() {
                self.error()
            } else {
                let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
                unsafe { (self.api.free)(message as Handle) };
                text
            };
            return Err(text);
        }
        Ok(())
    }

    /// Run one statement with parameters; return every row's columns as text or integers.
    pub fn query(&self, sql: &str, params: &[Value], columns: usize) -> Result<Vec<Vec<Value>>, String> {
        let csql = CString::new(sql).map_err(|_| "NUL in SQL".to_string())?;
        let mut stmt = ptr::null_mut();
        let rc = unsafe { (self.api.prepare_v2)(self.handle, csql.as_ptr(), -1, &mut stmt, ptr::null_mut()) };
        if rc != SQLITE_OK {
            return Err(self.error());
        }
        let mut keep = Vec::new();
        for (index, param) in params.iter().enumerate() {
            let position = (index + 1) as c_int;
            let rc = match param {
                Value::Int(value) => unsafe { (self.api.bind_int64)(stmt, position, *value) },
                Value::Text(text) => {
                    let ctext = CString::new(text.as_str()).map_err(|_| "NUL in text".to_string())?;
                    let rc = unsafe { (self.api.bind_text)(stmt, position, ctext.as_ptr(), -1, SQLITE_TRANSIENT) };
                    keep.push(ctext);
                    rc
                }
            };
            if rc != SQLITE_OK {
                unsafe { (self.api.finalize)(stmt) };
                return Err(self.error());
            }
        }
        let mut rows = Vec::new();
        loop {
            match unsafe { (self.api.step)(stmt) } {
                SQLITE_ROW => {
                    let mut row = Vec::with_capacity(columns);
                    for column in 0..columns as c_int {
                        let text = unsafe { (self.api.column_text)(stmt, column) };
                        if text.is_null() {
                            row.push(Value::Int(unsafe { (self.api.column_int64)(stmt, column) }));
                        } else {
                            let value = unsafe { CStr::from_ptr(text as *const c_char) }.to_string_lossy().into_owned();
                            row.push(match value.parse::<i64>() {
                                Ok(number) => Value::Int(number),
                                Err(_) => Value::Text(value),
                            });
                        }
                    }
                    rows.push(row);
                }
                SQLITE_DONE => break,
                _ => {
                    let message = self.error();
                    unsafe { (self.api.finalize)(stmt) };
                    return Err(message);
                }
            }
        }
        unsafe { (self.api.finalize)(stmt) };
        Ok(rows)
    }

    pub fn scalar(&self, sql: &str) -> Result<i64, String> {
        match self.query(sql, &[], 1)?.into_iter().next().and_then(|row| row.into_iter().next()) {
            Some(Value::Int(value)) => Ok(value),
            Some(Value::Text(text)) => Err(format!("expected a number, got {text}")),
            None => Err(format!("no result for {sql}")),
        }
    }

    pub fn text(&self, sql: &str) -> Result<String, String> {
        match self.query(sql, &[], 1)?.into_iter().next().and_then(|row| row.into_iter().next()) {
            Some(Value::Text(text)) => Ok(text),
            Some(Value::Int(value)) => Ok(value.to_string()),
            None => Err(format!("no result for {sql}")),
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        unsafe { (self.api.close_v2)(self.handle) };
    }
}

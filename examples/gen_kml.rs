//! Deterministic generator of synthetic, Google-Earth-like KML for the benchmark (`bench/run.sh`).
//!
//! Written in Rust rather than Python because the benchmark needs gigabytes of it: this writes
//! several hundred MB/s, so a full run spends its time measuring, not generating. The same
//! arguments always give the same bytes (a fixed PRNG, no clock, no hash-map order), and the
//! number of coordinate tuples written is printed so that the benchmark can check the CSV rows.
//!
//! ```text
//! cargo run --release --example gen_kml -- OUT_DIR --mode mixed --files 4 --size 250M --seed 1
//! ```
//!
//! Modes:
//! - `mixed`: nested Folders, shared Styles and a StyleMap, descriptions with CDATA HTML,
//!   ExtendedData, TimeStamps, and every geometry kind: Points, long LineStrings, Polygons with
//!   holes, MultiGeometry, gx:Track (`when` + `gx:coord`) and gx:MultiTrack;
//! - `crawled`: what a crawler collects, small files of GPS-path LineStrings, visited Points and
//!   an occasional gx:Track;
//! - `huge-coords`: one Placemark whose single `<coordinates>` holds the whole size (the test of
//!   bounded memory).
//!
//! Prints `files=N bytes=B tuples=T` on stdout, and writes the same per file to
//! `OUT_DIR/manifest.tsv`.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Mixed,
    Crawled,
    HugeCoords,
}

struct Options {
    out: PathBuf,
    mode: Mode,
    files: usize,
    size: u64,
    seed: u64,
    prefix: String,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: gen_kml OUT_DIR [--mode mixed|crawled|huge-coords] [--files N] [--size BYTES[K|M|G]] \
         [--seed S] [--prefix P]"
    );
    ExitCode::from(2)
}

fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1 << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<u64>().ok().map(|n| n * unit)
}

fn parse_args() -> Option<Options> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        out: PathBuf::new(),
        mode: Mode::Mixed,
        files: 1,
        size: 1 << 20,
        seed: 1,
        prefix: String::new(),
    };
    let mut out = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mode" => {
                options.mode = match args.next()?.as_str() {
                    "mixed" => Mode::Mixed,
                    "crawled" => Mode::Crawled,
                    "huge-coords" => Mode::HugeCoords,
                    _ => return None,
                }
            }
            "--files" => options.files = args.next()?.parse().ok()?,
            "--size" => options.size = parse_size(&args.next()?)?,
            "--seed" => options.seed = args.next()?.parse().ok()?,
            "--prefix" => options.prefix = args.next()?,
            _ if arg.starts_with("--") => return None,
            _ if out.is_none() => out = Some(PathBuf::from(arg)),
            _ => return None,
        }
    }
    options.out = out?;
    Some(options)
}

fn main() -> ExitCode {
    let Some(options) = parse_args() else {
        return usage();
    };
    match generate(&options) {
        Ok((bytes, tuples)) => {
            println!("files={} bytes={bytes} tuples={tuples}", options.files);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen_kml: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generate(options: &Options) -> io::Result<(u64, u64)> {
    fs::create_dir_all(&options.out)?;
    let mut manifest = BufWriter::new(File::create(options.out.join("manifest.tsv"))?);
    writeln!(manifest, "file\tbytes\ttuples")?;
    let (mut bytes, mut tuples) = (0, 0);
    let digits = options.files.saturating_sub(1).to_string().len().max(5);
    for index in 0..options.files {
        let name = format!("{}{index:0digits$}.kml", options.prefix);
        // Each file has its own stream, so a file's bytes do not depend on how many come before.
        let rng = Rng::new(options.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (b, t) = write_file(&options.out.join(&name), options, rng)?;
        writeln!(manifest, "{name}\t{b}\t{t}")?;
        bytes += b;
        tuples += t;
    }
    manifest.flush()?;
    Ok((bytes, tuples))
}

fn write_file(path: &Path, options: &Options, rng: Rng) -> io::Result<(u64, u64)> {
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut kml = Kml {
        out: Counting {
            inner: file,
            bytes: 0,
        },
        rng,
        tuples: 0,
        features: 0,
        number: Vec::with_capacity(32),
    };
    match options.mode {
        Mode::Mixed => kml.mixed(options.size)?,
        Mode::Crawled => kml.crawled(options.size)?,
        Mode::HugeCoords => kml.huge_coords(options.size)?,
    }
    kml.out.flush()?;
    Ok((kml.out.bytes, kml.tuples))
}

/// splitmix64: tiny, fast, and the same on every platform and Rust version.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (a negligible modulo bias is fine for test data).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

const WORDS: &[&str] = &[
    "north", "ridge", "trail", "river", "camp", "lake", "summit", "bridge", "forest", "harbour",
    "station", "meadow", "quarry", "chapel", "mill", "pass", "spring", "tower", "ferry", "grove",
];
const STYLES: &[&str] = &["#track", "#parcel", "#poi", "#route-map"];
const GEOMETRY_MIX: u64 = 100;

struct Kml<W: Write> {
    out: Counting<W>,
    rng: Rng,
    tuples: u64,
    features: u64,
    number: Vec<u8>,
}

impl<W: Write> Kml<W> {
    fn s(&mut self, text: &str) -> io::Result<()> {
        self.out.write_all(text.as_bytes())
    }

    fn header(&mut self, name: &str) -> io::Result<()> {
        self.s(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <kml xmlns=\"http://www.opengis.net/kml/2.2\" xmlns:gx=\"http://www.google.com/kml/ext/2.2\">\n\
             <Document>\n<name>",
        )?;
        self.s(name)?;
        self.s(
            "</name>\n<open>1</open>\n\
             <Style id=\"track\"><IconStyle><scale>1.1</scale><Icon><href>http://maps.google.com/mapfiles/kml/shapes/track.png</href></Icon></IconStyle>\
             <LineStyle><color>ff0000ff</color><width>3</width></LineStyle></Style>\n\
             <Style id=\"parcel\"><LineStyle><color>ff00aa00</color><width>1.5</width></LineStyle>\
             <PolyStyle><color>4000ff00</color><fill>1</fill><outline>1</outline></PolyStyle></Style>\n\
             <Style id=\"poi\"><IconStyle><color>ff00ffff</color><Icon><href>http://maps.google.com/mapfiles/kml/pushpin/ylw-pushpin.png</href></Icon>\
             <hotSpot x=\"20\" y=\"2\" xunits=\"pixels\" yunits=\"pixels\"/></IconStyle><LabelStyle><scale>0.8</scale></LabelStyle></Style>\n\
             <StyleMap id=\"route-map\"><Pair><key>normal</key><styleUrl>#track</styleUrl></Pair>\
             <Pair><key>highlight</key><styleUrl>#poi</styleUrl></Pair></StyleMap>\n",
        )
    }

    fn footer(&mut self) -> io::Result<()> {
        self.s("</Document>\n</kml>\n")
    }

    /// A signed fixed-point number with `decimals` digits after the point, from an integer
    /// scaled by 10^decimals. Formatted by hand: `format!` would make the generator the
    /// bottleneck of the benchmark.
    fn fixed(&mut self, value: i64, decimals: u32) -> io::Result<()> {
        let n = &mut self.number;
        n.clear();
        if value < 0 {
            n.push(b'-');
        }
        let magnitude = value.unsigned_abs();
        let scale = 10u64.pow(decimals);
        push_uint(n, magnitude / scale);
        if decimals > 0 {
            n.push(b'.');
            let mut frac = magnitude % scale;
            let start = n.len();
            n.resize(start + decimals as usize, b'0');
            for i in (0..decimals as usize).rev() {
                n[start + i] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
        }
        self.out.write_all(&self.number)
    }

    /// A random integer in `offset..offset + modulo`.
    fn rand_uint(&mut self, modulo: u64, offset: u64) -> io::Result<()> {
        let value = self.rng.next() % modulo + offset;
        self.uint(value)
    }

    fn uint(&mut self, value: u64) -> io::Result<()> {
        self.number.clear();
        push_uint(&mut self.number, value);
        self.out.write_all(&self.number)
    }

    /// One `lon,lat[,alt]` tuple (micro-degrees, decimetres).
    fn tuple(&mut self, lon: i64, lat: i64, alt: Option<i64>) -> io::Result<()> {
        self.fixed(lon, 6)?;
        self.s(",")?;
        self.fixed(lat, 6)?;
        if let Some(alt) = alt {
            self.s(",")?;
            self.fixed(alt, 1)?;
        }
        self.tuples += 1;
        Ok(())
    }

    /// `count` tuples of a random walk starting near (`lon`, `lat`), one separator between
    /// tuples, Google Earth's usual layout (a space, sometimes a newline and indentation).
    fn walk(
        &mut self,
        count: u64,
        mut lon: i64,
        mut lat: i64,
        step: i64,
        alt: bool,
    ) -> io::Result<()> {
        let mut height = self.rng.range(0, 30_000);
        for i in 0..count {
            if i > 0 {
                if i % 8 == 0 {
                    self.s("\n\t\t\t\t")?;
                } else {
                    self.s(" ")?;
                }
            }
            self.tuple(lon, lat, alt.then_some(height))?;
            lon = (lon + self.rng.range(-step, step + 1)).clamp(-179_999_999, 179_999_999);
            lat = (lat + self.rng.range(-step, step + 1)).clamp(-89_999_999, 89_999_999);
            height = (height + self.rng.range(-20, 21)).max(0);
        }
        Ok(())
    }

    fn coordinates(
        &mut self,
        count: u64,
        lon: i64,
        lat: i64,
        step: i64,
        alt: bool,
    ) -> io::Result<()> {
        self.s("<coordinates>\n\t\t\t\t")?;
        self.walk(count, lon, lat, step, alt)?;
        self.s("\n\t\t\t</coordinates>")
    }

    fn ring(&mut self, lon: i64, lat: i64, radius: i64, points: u64) -> io::Result<()> {
        // A closed, roughly circular ring: `points` vertices, the last repeating the first.
        self.s("<LinearRing><coordinates>\n\t\t\t\t")?;
        for i in 0..=points {
            if i > 0 {
                self.s(" ")?;
            }
            let k = i % points;
            // Integer-only "circle": a diamond with jitter keeps the generator free of floats.
            let quarter = points.div_ceil(4).max(1);
            let t = (k % quarter) as i64 * radius / quarter as i64;
            let (dx, dy) = match k / quarter {
                0 => (radius - t, t),
                1 => (-t, radius - t),
                2 => (t - radius, -t),
                _ => (t, t - radius),
            };
            let jitter = if k == 0 {
                0
            } else {
                self.rng.range(-radius / 20 - 1, radius / 20 + 1)
            };
            self.tuple(lon + dx + jitter, lat + dy, Some(0))?;
        }
        self.s("\n\t\t\t</coordinates></LinearRing>")
    }

    fn polygon(&mut self, lon: i64, lat: i64) -> io::Result<()> {
        let radius = self.rng.range(2_000, 200_000);
        let points = self.rng.range(8, 120) as u64;
        self.s("<Polygon><extrude>0</extrude><altitudeMode>clampToGround</altitudeMode><outerBoundaryIs>")?;
        self.ring(lon, lat, radius, points)?;
        self.s("</outerBoundaryIs>")?;
        for _ in 0..self.rng.range(0, 4) {
            let (dx, dy) = (
                self.rng.range(-radius / 3, radius / 3),
                self.rng.range(-radius / 3, radius / 3),
            );
            let points = self.rng.range(4, 30) as u64;
            self.s("<innerBoundaryIs>")?;
            self.ring(lon + dx, lat + dy, radius / 6, points)?;
            self.s("</innerBoundaryIs>")?;
        }
        self.s("</Polygon>")
    }

    fn track(&mut self, count: u64, mut lon: i64, mut lat: i64) -> io::Result<()> {
        self.s("<gx:Track><altitudeMode>absolute</altitudeMode>\n")?;
        let start = self.rng.range(0, 300 * 86_400);
        for i in 0..count as i64 {
            let t = start + i * 5;
            let (day, second) = (t / 86_400, t % 86_400);
            // 2024 has 366 days; months are folded into 12 × 30 days for simplicity.
            let (month, dom) = (day / 30 % 12 + 1, day % 30 + 1);
            self.s("<when>2024-")?;
            self.two(month)?;
            self.s("-")?;
            self.two(dom)?;
            self.s("T")?;
            self.two(second / 3600)?;
            self.s(":")?;
            self.two(second / 60 % 60)?;
            self.s(":")?;
            self.two(second % 60)?;
            self.s("Z</when>\n")?;
        }
        for _ in 0..count {
            self.s("<gx:coord>")?;
            let alt = self.rng.range(0, 30_000);
            self.fixed(lon, 6)?;
            self.s(" ")?;
            self.fixed(lat, 6)?;
            self.s(" ")?;
            self.fixed(alt, 1)?;
            self.tuples += 1;
            self.s("</gx:coord>\n")?;
            lon += self.rng.range(-300, 301);
            lat += self.rng.range(-300, 301);
        }
        self.s("</gx:Track>")
    }

    fn two(&mut self, value: i64) -> io::Result<()> {
        let bytes = [b'0' + (value / 10 % 10) as u8, b'0' + (value % 10) as u8];
        self.out.write_all(&bytes)
    }

    /// The descriptive part every Placemark of a real export carries.
    fn placemark_head(&mut self, kind: &str) -> io::Result<()> {
        let id = self.features;
        self.features += 1;
        let word = self.rng.pick(WORDS);
        self.s("<Placemark id=\"pm")?;
        self.uint(id)?;
        self.s("\">\n\t<name>")?;
        self.s(word)?;
        self.s(" ")?;
        self.s(kind)?;
        self.s(" ")?;
        self.uint(id)?;
        self.s("</name>\n\t<description><![CDATA[<h3>")?;
        self.s(word)?;
        self.s("</h3><p>Surveyed &amp; <b>checked</b>, see <a href=\"https://example.org/f/")?;
        self.uint(id)?;
        self.s("\">record</a>.</p><table><tr><td>km</td><td>")?;
        self.rand_uint(1000, 0)?;
        self.s("</td></tr></table>]]></description>\n")?;
        if self.rng.chance(50) {
            self.s("\t<TimeStamp><when>2024-0")?;
            self.rand_uint(9, 1)?;
            self.s("-1")?;
            self.rand_uint(9, 0)?;
            self.s("T12:00:00Z</when></TimeStamp>\n")?;
        }
        let style = self.rng.pick(STYLES);
        self.s("\t<styleUrl>")?;
        self.s(style)?;
        self.s("</styleUrl>\n\t<ExtendedData><Data name=\"source\"><value>survey ")?;
        self.rand_uint(50, 0)?;
        self.s("</value></Data><Data name=\"quality\"><displayName>Quality</displayName><value>")?;
        let quality = if self.rng.chance(80) {
            "good"
        } else {
            "poor &lt;5m&gt;"
        };
        self.s(quality)?;
        self.s("</value></Data></ExtendedData>\n\t")
    }

    /// A Placemark with a random geometry near (`lon`, `lat`).
    fn mixed_placemark(&mut self, lon: i64, lat: i64) -> io::Result<()> {
        let roll = self.rng.next() % GEOMETRY_MIX;
        match roll {
            0..=24 => {
                self.placemark_head("point")?;
                self.s("<Point><coordinates>")?;
                let alt = self.rng.range(0, 5_000);
                self.tuple(lon, lat, Some(alt))?;
                self.s("</coordinates></Point>")?;
            }
            25..=54 => {
                self.placemark_head("route")?;
                let count = self.rng.range(200, 3_000) as u64;
                self.s("<LineString><tessellate>1</tessellate><altitudeMode>clampToGround</altitudeMode>")?;
                self.coordinates(count, lon, lat, 400, true)?;
                self.s("</LineString>")?;
            }
            55..=74 => {
                self.placemark_head("parcel")?;
                self.polygon(lon, lat)?;
            }
            75..=86 => {
                self.placemark_head("site")?;
                self.s("<MultiGeometry><Point><coordinates>")?;
                self.tuple(lon, lat, None)?;
                self.s("</coordinates></Point><LineString>")?;
                let count = self.rng.range(20, 300) as u64;
                self.coordinates(count, lon, lat, 200, false)?;
                self.s("</LineString>")?;
                self.polygon(lon + 1_000, lat - 1_000)?;
                self.s("</MultiGeometry>")?;
            }
            87..=95 => {
                self.placemark_head("gps track")?;
                let count = self.rng.range(100, 1_500) as u64;
                self.track(count, lon, lat)?;
            }
            _ => {
                self.placemark_head("multi track")?;
                self.s("<gx:MultiTrack><gx:interpolate>0</gx:interpolate>")?;
                for _ in 0..self.rng.range(2, 4) {
                    let count = self.rng.range(50, 400) as u64;
                    self.track(count, lon, lat)?;
                }
                self.s("</gx:MultiTrack>")?;
            }
        }
        self.s("\n</Placemark>\n")
    }

    fn mixed(&mut self, size: u64) -> io::Result<()> {
        self.header("mixed export")?;
        let mut region = 0;
        while self.out.bytes < size {
            // Nested folders: region > district (> block), each with a few Placemarks.
            region += 1;
            self.folder_open("region", region)?;
            for district in 0..self.rng.range(1, 4) {
                self.folder_open("district", district as u64)?;
                let lon = self.rng.range(-170_000_000, 170_000_000);
                let lat = self.rng.range(-80_000_000, 80_000_000);
                for _ in 0..self.rng.range(2, 8) {
                    self.mixed_placemark(lon, lat)?;
                }
                if self.rng.chance(40) {
                    self.folder_open("block", 0)?;
                    for _ in 0..self.rng.range(1, 4) {
                        self.mixed_placemark(lon, lat)?;
                    }
                    self.s("</Folder>\n")?;
                }
                self.s("</Folder>\n")?;
                if self.out.bytes >= size {
                    break;
                }
            }
            self.s("</Folder>\n")?;
        }
        self.footer()
    }

    fn folder_open(&mut self, kind: &str, n: u64) -> io::Result<()> {
        self.s("<Folder><name>")?;
        self.s(kind)?;
        self.s(" ")?;
        self.uint(n)?;
        self.s("</name><open>0</open>\n")
    }

    /// Small files as a crawler collects them: a day's GPS paths and the places visited.
    fn crawled(&mut self, size: u64) -> io::Result<()> {
        self.header("crawled day")?;
        let mut lon = self.rng.range(-170_000_000, 170_000_000);
        let mut lat = self.rng.range(-70_000_000, 70_000_000);
        self.folder_open("paths", 0)?;
        while self.out.bytes < size {
            let roll = self.rng.next() % 100;
            if roll < 60 {
                self.placemark_head("path")?;
                let count = self.rng.range(30, 250) as u64;
                self.s("<LineString><tessellate>1</tessellate>")?;
                let alt = self.rng.chance(50);
                self.coordinates(count, lon, lat, 150, alt)?;
                self.s("</LineString>\n</Placemark>\n")?;
            } else if roll < 92 {
                self.placemark_head("visit")?;
                self.s("<Point><coordinates>")?;
                self.tuple(lon, lat, None)?;
                self.s("</coordinates></Point>\n</Placemark>\n")?;
            } else {
                self.placemark_head("recording")?;
                let count = self.rng.range(20, 120) as u64;
                self.track(count, lon, lat)?;
                self.s("\n</Placemark>\n")?;
            }
            lon += self.rng.range(-5_000, 5_001);
            lat += self.rng.range(-5_000, 5_001);
        }
        self.s("</Folder>\n")?;
        self.footer()
    }

    /// One LineString whose single `<coordinates>` makes up the whole file.
    fn huge_coords(&mut self, size: u64) -> io::Result<()> {
        self.header("one huge coordinates element")?;
        self.placemark_head("huge line")?;
        self.s("<LineString><coordinates>\n")?;
        let lon = self.rng.range(-170_000_000, 170_000_000);
        let lat = self.rng.range(-70_000_000, 70_000_000);
        while self.out.bytes < size {
            // In slices, so that the size is checked now and then.
            self.walk(10_000, lon, lat, 500, true)?;
            self.s("\n")?;
        }
        self.s("</coordinates></LineString>\n</Placemark>\n")?;
        self.footer()
    }
}

fn push_uint(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

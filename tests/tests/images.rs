//! Images as a user has them: the shared photos as JPEG (encoded here), a JPEG whose EXIF says
//! the camera was turned, and PNGs of every bit depth and colour type, each decoded by
//! `load_image` to the pixels a viewer shows; `temblor preprocess` takes a JPEG.

use std::path::{Path, PathBuf};
use temblor_ops_lib::preprocess::{load_image, Image};
use temblor_tests::{output, shared, temblor};

/// Writes `img` as a JPEG of `quality` at `path`.
fn write_jpeg(img: &Image, quality: u8, path: &Path) {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode(
            &img.rgb,
            img.width as u32,
            img.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .expect("JPEG encode");
    std::fs::write(path, bytes).unwrap();
}

fn mean_abs_diff(a: &Image, b: &Image) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let sum: u64 = a
        .rgb
        .iter()
        .zip(&b.rgb)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    sum as f64 / a.rgb.len() as f64
}

#[test]
fn shared_photos_as_jpeg_decode_to_nearly_the_png_pixels() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["astronaut", "chelsea", "coffee"] {
        let png = load_image(&shared().join(format!("images/{name}.png"))).expect("PNG");
        let jpg = dir.path().join(format!("{name}.jpg"));
        write_jpeg(&png, 95, &jpg);
        let back = load_image(&jpg).expect("JPEG");
        let diff = mean_abs_diff(&png, &back);
        // Quality 95 loses about one level in 255 on average on these photos.
        assert!(diff < 3.0, "{name}: mean abs diff {diff}");
    }
}

#[test]
fn preprocess_takes_a_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let png = load_image(&shared().join("images/coffee.png")).expect("PNG");
    let jpg = dir.path().join("coffee.jpg");
    write_jpeg(&png, 95, &jpg);
    let out = dir.path().join("x.npy");
    let (code, stdout, err) = output(
        temblor()
            .arg("preprocess")
            .arg(&jpg)
            .args(["--size", "64x96", "-o"])
            .arg(&out),
    );
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("[1, 3, 64, 96]"), "{stdout}");
    assert!(out.is_file());
}

/// `jpeg` with an APP1 Exif segment right after its SOI marker, as a camera writes it: a
/// little-endian TIFF header and one IFD entry, Orientation (0x0112, SHORT) = `orientation`.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = vec![b'I', b'I', 42, 0, 8, 0, 0, 0];
    tiff.extend(1u16.to_le_bytes()); // entries in IFD0
    tiff.extend(0x0112u16.to_le_bytes());
    tiff.extend(3u16.to_le_bytes()); // SHORT
    tiff.extend(1u32.to_le_bytes()); // count
    tiff.extend(orientation.to_le_bytes());
    tiff.extend([0, 0]); // the value field's padding to 4 bytes
    tiff.extend(0u32.to_le_bytes()); // no next IFD
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend(tiff);
    assert_eq!(&jpeg[..2], [0xFF, 0xD8], "SOI");
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((segment.len() + 2) as u16).to_be_bytes());
    out.extend(segment);
    out.extend(&jpeg[2..]);
    out
}

/// A 48x24 (width x height) image, blue but for a red 8x8 block in its top-left corner.
fn marked() -> Image {
    let (width, height) = (48, 24);
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let red = x < 8 && y < 8;
            rgb.extend(if red { [255, 0, 0] } else { [0, 0, 255] });
        }
    }
    Image { width, height, rgb }
}

fn pixel(img: &Image, x: usize, y: usize) -> [u8; 3] {
    let at = (y * img.width + x) * 3;
    [img.rgb[at], img.rgb[at + 1], img.rgb[at + 2]]
}

fn is_red(p: [u8; 3]) -> bool {
    p[0] > 200 && p[1] < 60 && p[2] < 60
}

#[test]
fn exif_orientation_6_turns_the_image_clockwise() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.jpg");
    write_jpeg(&marked(), 95, &plain);
    let turned = with_exif_orientation(&std::fs::read(&plain).unwrap(), 6);
    // Named .png: the content, not the name, says it is a JPEG.
    let path = dir.path().join("turned.png");
    std::fs::write(&path, turned).unwrap();

    let upright = load_image(&plain).expect("plain JPEG");
    assert_eq!((upright.width, upright.height), (48, 24));
    assert!(is_red(pixel(&upright, 2, 2)));

    // Orientation 6: the stored rows are shown rotated 90 degrees clockwise, so the top-left
    // corner goes to the top-right and the width and height swap.
    let img = load_image(&path).expect("EXIF JPEG");
    assert_eq!((img.width, img.height), (24, 48));
    assert!(is_red(pixel(&img, 21, 2)), "{:?}", pixel(&img, 21, 2));
    assert!(!is_red(pixel(&img, 2, 2)), "{:?}", pixel(&img, 2, 2));
}

/// Six pixels; the 8-bit RGB every colour case must decode to.
const WANT: [[u8; 3]; 6] = [
    [0, 0, 0],
    [255, 255, 255],
    [200, 10, 30],
    [16, 128, 240],
    [77, 77, 77],
    [1, 254, 100],
];

/// Writes a 3x2 PNG of `color` and `depth` with `data` as its rows; an indexed one takes
/// [`WANT`] as its palette.
fn write_png(path: &Path, color: png::ColorType, depth: png::BitDepth, data: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), 3, 2);
    enc.set_color(color);
    enc.set_depth(depth);
    if color == png::ColorType::Indexed {
        enc.set_palette(WANT.concat());
    }
    let mut w = enc.write_header().unwrap();
    w.write_image_data(data).unwrap();
}

#[test]
fn png_bit_depths_and_colour_types_decode_to_rgb8() {
    use png::BitDepth::{Eight, Sixteen};
    use png::ColorType::{Grayscale, GrayscaleAlpha, Indexed, Rgb, Rgba};
    let dir = tempfile::tempdir().unwrap();
    let rgb8: Vec<u8> = WANT.concat();
    // A 16-bit sample v * 257 (both bytes v) is v in 8 bits.
    let rgb16: Vec<u8> = rgb8.iter().flat_map(|&v| [v, v]).collect();
    let rgba8: Vec<u8> = WANT.iter().flat_map(|p| [p[0], p[1], p[2], 128]).collect();
    let grays: Vec<u8> = vec![0, 255, 30, 128, 77, 200];
    let gray_rgb: Vec<[u8; 3]> = grays.iter().map(|&g| [g; 3]).collect();
    let gray16: Vec<u8> = grays.iter().flat_map(|&v| [v, v]).collect();
    let gray_alpha: Vec<u8> = grays.iter().flat_map(|&v| [v, 0]).collect();
    let indices: Vec<u8> = (0..6).collect();
    let cases = [
        ("rgb8", Rgb, Eight, &rgb8, &WANT[..]),
        ("rgb16", Rgb, Sixteen, &rgb16, &WANT),
        ("rgba8", Rgba, Eight, &rgba8, &WANT),
        ("gray8", Grayscale, Eight, &grays, &gray_rgb),
        ("gray16", Grayscale, Sixteen, &gray16, &gray_rgb),
        ("gray_alpha", GrayscaleAlpha, Eight, &gray_alpha, &gray_rgb),
        ("palette", Indexed, Eight, &indices, &WANT),
    ];
    for (name, color, depth, data, expect) in cases {
        let path: PathBuf = dir.path().join(format!("{name}.png"));
        write_png(&path, color, depth, data);
        let img = load_image(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((img.width, img.height), (3, 2), "{name}");
        let got: Vec<[u8; 3]> = img.rgb.chunks(3).map(|p| [p[0], p[1], p[2]]).collect();
        assert_eq!(got, expect, "{name}");
    }
}

/* Photos on the phone: scaled to at most 1600 px on the long edge and about 400 KB, turned
 * upright, EXIF time and place kept — without ever holding a full-size photo in a canvas.
 *
 * A 48-megapixel photo is 192 MB as raw pixels; cheap phones kill the page for less. So the
 * size is read from the file's header (a few KB), and the browser is asked to decode it
 * straight to the target size (createImageBitmap with resize options, which decodes JPEGs
 * at a reduced scale). Only browsers without that fall back to an <img> element.
 */
(function (root) {
  'use strict';
  var LONG_EDGE = 1600;
  var TARGET_BYTES = 400 * 1024;
  var HEADER_BYTES = 256 * 1024;

  function u16(view, pos, little) { return view.getUint16(pos, little); }

  /* Width, height and EXIF orientation from a JPEG's header; the APP1 (EXIF) segment too. */
  function readJpegHeader(buffer) {
    var view = new DataView(buffer);
    if (view.byteLength < 4 || u16(view, 0) !== 0xFFD8) return null;
    var pos = 2, info = {orientation: 1, exif: null, width: 0, height: 0};
    while (pos + 4 <= view.byteLength) {
      if (view.getUint8(pos) !== 0xFF) break;
      var marker = view.getUint8(pos + 1);
      if (marker === 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker === 0x01) { pos += 2; continue; }
      if (marker === 0xFF) { pos += 1; continue; }
      var length = u16(view, pos + 2);
      if (marker === 0xE1 && !info.exif && pos + 4 + length - 2 <= view.byteLength
          && u16(view, pos + 4) === 0x4578 && u16(view, pos + 6) === 0x6966) {
        info.exif = {start: pos, end: pos + 2 + length};
        info.orientation = exifOrientation(view, pos + 10) || 1;
      }
      if ((marker >= 0xC0 && marker <= 0xC3) || (marker >= 0xC5 && marker <= 0xC7)
          || (marker >= 0xC9 && marker <= 0xCB) || (marker >= 0xCD && marker <= 0xCF)) {
        if (pos + 9 > view.byteLength) break;
        info.height = u16(view, pos + 5);
        info.width = u16(view, pos + 7);
        return info;
      }
      pos += 2 + length;
    }
    return info.width ? info : null;
  }

  /* The orientation tag's value and where it sits, in the TIFF block starting at ``tiff``. */
  function orientationTag(view, tiff) {
    if (tiff + 8 > view.byteLength) return null;
    var little = u16(view, tiff) === 0x4949;
    var ifd = tiff + view.getUint32(tiff + 4, little);
    if (ifd + 2 > view.byteLength) return null;
    var count = u16(view, ifd, little);
    for (var i = 0; i < count; i++) {
      var entry = ifd + 2 + i * 12;
      if (entry + 12 > view.byteLength) return null;
      if (u16(view, entry, little) === 0x0112) {
        return {value: u16(view, entry + 8, little), at: entry + 8, little: little};
      }
    }
    return null;
  }

  function exifOrientation(view, tiff) {
    var tag = orientationTag(view, tiff);
    return tag && tag.value >= 1 && tag.value <= 8 ? tag.value : 1;
  }

  /* The original EXIF segment with orientation set to 1 (the pixels are upright now). */
  function uprightExif(buffer, exif) {
    var copy = buffer.slice(exif.start, exif.end);
    var view = new DataView(copy);
    var tag = orientationTag(view, 10);
    if (tag) view.setUint16(tag.at, 1, tag.little);
    return copy;
  }

  function pngSize(buffer) {
    var view = new DataView(buffer);
    if (view.byteLength < 24 || view.getUint32(0) !== 0x89504E47) return null;
    return {width: view.getUint32(16), height: view.getUint32(20), orientation: 1, exif: null};
  }

  function target(width, height) {
    var scale = Math.min(1, LONG_EDGE / Math.max(width, height));
    return {width: Math.max(1, Math.round(width * scale)),
            height: Math.max(1, Math.round(height * scale))};
  }

  async function decodeScaled(file, header) {
    var w = header ? header.width : 0, h = header ? header.height : 0;
    if (header && header.orientation >= 5) { var t = w; w = h; h = t; }  // shown turned 90°
    if (w && h && typeof createImageBitmap === 'function') {
      var size = target(w, h);
      try {
        return await createImageBitmap(file, {resizeWidth: size.width, resizeHeight: size.height,
                                              resizeQuality: 'high', imageOrientation: 'from-image'});
      } catch (e) { /* an old browser without resize options: the fallback below */ }
    }
    var url = URL.createObjectURL(file);
    try {
      var img = new Image();
      img.decoding = 'async';
      img.src = url;
      await img.decode();
      return img;
    } finally {
      setTimeout(function () { URL.revokeObjectURL(url); }, 0);
    }
  }

  function canvasFor(width, height) {
    if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(width, height);
    var canvas = document.createElement('canvas');
    canvas.width = width; canvas.height = height;
    return canvas;
  }

  function encode(canvas, quality) {
    if (canvas.convertToBlob) return canvas.convertToBlob({type: 'image/jpeg', quality: quality});
    return new Promise(function (resolve) { canvas.toBlob(resolve, 'image/jpeg', quality); });
  }

  /* Splice the original EXIF (upright) into the new JPEG after its JFIF header. */
  async function withExif(jpeg, exifBuffer) {
    if (!exifBuffer) return jpeg;
    var head = new DataView(await jpeg.slice(0, 64).arrayBuffer());
    var cut = 2;
    if (head.byteLength > 6 && head.getUint16(2) === 0xFFE0) cut = 4 + head.getUint16(4);
    return new Blob([jpeg.slice(0, cut), exifBuffer, jpeg.slice(cut)], {type: 'image/jpeg'});
  }

  /* Scale one picture for upload; resolves {blob, width, height, name, originalWidth, …}. */
  async function prepare(file) {
    var headBuffer = await file.slice(0, HEADER_BYTES).arrayBuffer();
    var header = readJpegHeader(headBuffer) || pngSize(headBuffer);
    var source = await decodeScaled(file, header);
    var natW = source.naturalWidth || source.width, natH = source.naturalHeight || source.height;
    var size = target(natW, natH);
    var blob = null, quality = 0.82;
    for (var step = 0; step < 8; step++) {
      var canvas = canvasFor(size.width, size.height);
      var ctx = canvas.getContext('2d');
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, size.width, size.height);
      ctx.drawImage(source, 0, 0, size.width, size.height);
      blob = await encode(canvas, quality);
      canvas.width = canvas.height = 1;  // give the memory back now, not at the next GC
      if (blob.size <= TARGET_BYTES) break;
      if (quality > 0.55) quality -= 0.1;
      else size = {width: Math.round(size.width * 0.85), height: Math.round(size.height * 0.85)};
    }
    if (source.close) source.close();
    var exif = header && header.exif ? uprightExif(headBuffer, header.exif) : null;
    blob = await withExif(blob, exif);
    var name = (file.name || 'photo').replace(/\.[^.]*$/, '') + '.jpg';
    return {blob: blob, width: size.width, height: size.height, name: name,
            originalWidth: header ? header.width : natW, originalHeight: header ? header.height : natH,
            originalBytes: file.size, takenAt: new Date().toISOString()};
  }

  root.YihaoPhoto = {prepare: prepare, LONG_EDGE: LONG_EDGE, TARGET_BYTES: TARGET_BYTES,
                     _readJpegHeader: readJpegHeader};
})(typeof self !== 'undefined' ? self : this);

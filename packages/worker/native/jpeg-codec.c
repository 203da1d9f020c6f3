// The worker's JPEG codec: libjpeg-turbo called directly, on the calling thread, through
// Node-API (ABI-stable, so one build loads on every Node version).
//
// Why: libvips (through sharp) spends 2–3 times libjpeg-turbo's own CPU on a 640×480 decode
// (thread hand-offs in strips, fresh memory for every image, a pipeline per call), and a decode is
// the largest cost per image outside the model. This file does only the plain case, byte for byte
// what libvips produces there (a test compares them); anything else returns null and the caller
// asks sharp, which then decides exactly as before.
//
//   decodeRgb(jpeg: Buffer) -> { data: Buffer, width, height } | null
//   encodeRgb(rgb: Buffer, width, height, quality) -> Buffer
//
// Built by packages/worker/scripts/build-jpeg-codec.mjs (`npm run build`) against the system's
// libjpeg-turbo (Debian and Ubuntu: libjpeg-dev).
#include <node_api.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

struct codec_error {
  struct jpeg_error_mgr mgr;
  jmp_buf jump;
  int warnings;
};

static void on_error(j_common_ptr cinfo) {
  struct codec_error *err = (struct codec_error *)cinfo->err;
  longjmp(err->jump, 1);
}

// libjpeg reports damaged data (a premature end, a bad Huffman code) as warnings and goes on with
// made-up pixels. Such a file is not the plain case: count it, and let libvips judge it.
static void on_message(j_common_ptr cinfo, int level) {
  if (level < 0) ((struct codec_error *)cinfo->err)->warnings++;
}

static void init_error(struct codec_error *err) {
  jpeg_std_error(&err->mgr);
  err->mgr.error_exit = on_error;
  err->mgr.emit_message = on_message;
  err->warnings = 0;
}

// An embedded ICC profile: libvips converts such pixels to sRGB through it, so they are not ours.
static int has_icc_profile(j_decompress_ptr cinfo) {
  for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 2 && m->data_length >= 12 && memcmp(m->data, "ICC_PROFILE\0", 12) == 0)
      return 1;
  }
  return 0;
}

static napi_value null_value(napi_env env) {
  napi_value result;
  napi_get_null(env, &result);
  return result;
}

static napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static napi_value decode_rgb(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1)
    return throw_type_error(env, "decodeRgb(jpeg: Buffer)");
  void *input;
  size_t input_length;
  if (napi_get_buffer_info(env, argv[0], &input, &input_length) != napi_ok)
    return throw_type_error(env, "decodeRgb: expected a Buffer");

  struct jpeg_decompress_struct cinfo;
  struct codec_error err;
  // volatile: assigned after setjmp and read after a longjmp back to it.
  napi_value volatile output = NULL;
  cinfo.err = &err.mgr;
  init_error(&err);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return null_value(env);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_save_markers(&cinfo, JPEG_APP0 + 2, 0xffff);
  jpeg_mem_src(&cinfo, (const unsigned char *)input, (unsigned long)input_length);
  jpeg_read_header(&cinfo, TRUE);
  int plain = err.warnings == 0 && cinfo.data_precision == 8 && !has_icc_profile(&cinfo) &&
              ((cinfo.num_components == 3 && cinfo.jpeg_color_space == JCS_YCbCr) ||
               (cinfo.num_components == 1 && cinfo.jpeg_color_space == JCS_GRAYSCALE));
  if (!plain) {
    jpeg_destroy_decompress(&cinfo);
    return null_value(env);
  }
  // libjpeg's defaults are libvips': accurate integer DCT, fancy upsampling, no scaling.
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  size_t stride = (size_t)cinfo.output_width * 3;
  void *pixels;
  napi_value buffer;
  if (napi_create_buffer(env, stride * cinfo.output_height, &pixels, &buffer) != napi_ok) {
    jpeg_destroy_decompress(&cinfo);
    return NULL; // the pending exception says why
  }
  output = buffer;
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW rows[16];
    JDIMENSION n = cinfo.output_height - cinfo.output_scanline;
    if (n > 16) n = 16;
    for (JDIMENSION i = 0; i < n; i++) rows[i] = (JSAMPROW)pixels + (cinfo.output_scanline + i) * stride;
    jpeg_read_scanlines(&cinfo, rows, n);
  }
  jpeg_finish_decompress(&cinfo);
  JDIMENSION width = cinfo.output_width, height = cinfo.output_height;
  int warnings = err.warnings;
  jpeg_destroy_decompress(&cinfo);
  if (warnings) return null_value(env);

  napi_value result, w, h;
  napi_create_object(env, &result);
  napi_create_uint32(env, width, &w);
  napi_create_uint32(env, height, &h);
  napi_set_named_property(env, result, "data", output);
  napi_set_named_property(env, result, "width", w);
  napi_set_named_property(env, result, "height", h);
  return result;
}

static napi_value encode_rgb(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  const char *usage = "encodeRgb(rgb: Buffer, width, height, quality 1-100)";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4)
    return throw_type_error(env, usage);
  void *rgb;
  size_t rgb_length;
  uint32_t width, height, quality;
  if (napi_get_buffer_info(env, argv[0], &rgb, &rgb_length) != napi_ok ||
      napi_get_value_uint32(env, argv[1], &width) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &height) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &quality) != napi_ok || width == 0 || height == 0 ||
      width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION || quality < 1 || quality > 100)
    return throw_type_error(env, usage);
  if (rgb_length != (size_t)width * height * 3) return throw_type_error(env, "encodeRgb: rgb is not width×height×3 bytes");

  struct jpeg_compress_struct cinfo;
  struct codec_error err;
  unsigned char *volatile out = NULL;
  unsigned long out_length = 0;
  cinfo.err = &err.mgr;
  init_error(&err);
  if (setjmp(err.jump)) {
    char message[JMSG_LENGTH_MAX];
    err.mgr.format_message((j_common_ptr)&cinfo, message);
    jpeg_destroy_compress(&cinfo);
    free(out);
    napi_throw_error(env, NULL, message);
    return NULL;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, (unsigned char **)&out, &out_length);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  // Baseline, 4:2:0 chroma, standard Huffman tables: what sharp writes with optimiseCoding off.
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, (int)quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  size_t stride = (size_t)width * 3;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = (JSAMPROW)rgb + cinfo.next_scanline * stride;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  napi_value result;
  napi_status status = napi_create_buffer_copy(env, out_length, out, NULL, &result);
  free(out);
  return status == napi_ok ? result : NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"decodeRgb", NULL, decode_rgb, NULL, NULL, NULL, napi_default, NULL},
      {"encodeRgb", NULL, encode_rgb, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, methods);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

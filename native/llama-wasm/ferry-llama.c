// Ferry's CPU engine core: llama.cpp's C API, compiled to WebAssembly, with the few calls the engine needs
// (load, tokenize, decode exact ids, greedy pick, top candidates, KV trims, KV state files). One model and one context per module
// instance: the browser side creates a module per engine, so there is no handle to pass around.
//
// The calls are synchronous; the caller (src/browser/llm/llama-wasm.ts) splits long prompts into batches so it can
// stop between them. Everything is int32 or a pointer into the module's memory.
#include "llama.h"
#include <emscripten.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static struct llama_model *model;
static struct llama_context *ctx;
static const struct llama_vocab *vocab;
static int n_vocab;
// The first error llama.cpp logged since the load began: a failed load returns null, and only the log says why (the
// lines after the first say only that it failed).
static char last_error[512];

static void on_log(enum ggml_log_level level, const char *text, void *user) {
  (void)user;
  if (level != GGML_LOG_LEVEL_ERROR || text == NULL || last_error[0] != 0) return;
  strncpy(last_error, text, sizeof last_error - 1);
  last_error[sizeof last_error - 1] = 0;
  size_t n = strlen(last_error);
  while (n > 0 && (last_error[n - 1] == '\n' || last_error[n - 1] == ' ')) last_error[--n] = 0;
}

EMSCRIPTEN_KEEPALIVE const char *fl_last_error(void) { return last_error; }

// The llama.cpp commit this was built from (the build script defines it): engines built from one commit load each
// other's KV state files.
EMSCRIPTEN_KEEPALIVE const char *fl_llama_commit(void) { return FERRY_LLAMA_COMMIT; }

// 0: loaded; -1: the model did not load; -2: no context of that size could be made.
EMSCRIPTEN_KEEPALIVE int fl_load(const char *path, int n_ctx, int n_batch, int n_threads) {
  llama_log_set(on_log, NULL);
  llama_backend_init();
  last_error[0] = 0;
  struct llama_model_params mp = llama_model_default_params();
  mp.load_mode = LLAMA_LOAD_MODE_NONE; // read into memory: a WebAssembly heap cannot map a file
  model = llama_model_load_from_file(path, mp);
  if (model == NULL) return -1;
  vocab = llama_model_get_vocab(model);
  n_vocab = llama_vocab_n_tokens(vocab);
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (uint32_t)n_ctx;
  cp.n_batch = (uint32_t)n_batch;
  cp.n_ubatch = (uint32_t)n_batch;
  cp.n_seq_max = 1;
  cp.n_threads = n_threads;
  cp.n_threads_batch = n_threads;
  ctx = llama_init_from_model(model, cp);
  if (ctx == NULL) return -2;
  return 0;
}

EMSCRIPTEN_KEEPALIVE void fl_free(void) {
  if (ctx) llama_free(ctx);
  if (model) llama_model_free(model);
  ctx = NULL;
  model = NULL;
}

EMSCRIPTEN_KEEPALIVE int fl_n_vocab(void) { return n_vocab; }
EMSCRIPTEN_KEEPALIVE int fl_n_ctx(void) { return (int)llama_n_ctx(ctx); }
EMSCRIPTEN_KEEPALIVE int fl_n_batch(void) { return (int)llama_n_batch(ctx); }
EMSCRIPTEN_KEEPALIVE int fl_bos(void) { return llama_vocab_bos(vocab); }
EMSCRIPTEN_KEEPALIVE int fl_eos(void) { return llama_vocab_eos(vocab); }
EMSCRIPTEN_KEEPALIVE int fl_add_bos(void) { return llama_vocab_get_add_bos(vocab) ? 1 : 0; }
EMSCRIPTEN_KEEPALIVE int fl_is_eog(int id) { return llama_vocab_is_eog(vocab, id) ? 1 : 0; }

// Text to ids, without BOS/EOS; `special`: control tokens written as text are parsed as such. Returns the count,
// or minus the count needed when `max` is too small.
EMSCRIPTEN_KEEPALIVE int fl_tokenize(const char *text, int len, int special, int *out, int max) {
  return llama_tokenize(vocab, text, len, out, max, false, special != 0);
}

// A token's bytes, control tokens included (as their text). Returns the length, or minus the length needed.
EMSCRIPTEN_KEEPALIVE int fl_piece(int id, char *out, int max) { return llama_token_to_piece(vocab, id, out, max, 0, true); }

// Appends `n` ids (at most n_batch) to the sequence; logits are kept for the last. llama_decode's code: 0 is done,
// 1 means no room in the KV cache, anything else an error.
EMSCRIPTEN_KEEPALIVE int fl_decode(int *ids, int n) { return llama_decode(ctx, llama_batch_get_one(ids, n)); }

// Keeps the first `n` positions of the sequence, drops the rest.
EMSCRIPTEN_KEEPALIVE int fl_keep(int n) {
  if (n == 0) {
    llama_memory_clear(llama_get_memory(ctx), true);
    return 1;
  }
  return llama_memory_seq_rm(llama_get_memory(ctx), 0, n, -1) ? 1 : 0;
}

// Writes the sequence's KV as llama.cpp's sequence state file at `path` — the file node-llama-cpp's saveStateToFile
// writes, so either engine loads the other's — recording the `n` ids it covers. 1 on success.
EMSCRIPTEN_KEEPALIVE int fl_state_save(const char *path, const int *ids, int n) {
  last_error[0] = 0;
  return llama_state_seq_save_file(ctx, path, 0, ids, (size_t)n) > 0 ? 1 : 0;
}

// Replaces the sequence's KV with a state file's; the ids it covers go to `ids` (room for `max`). Returns their
// count, or -1 when llama.cpp refused the file (another model, KV layout or format; the reason is in the log).
EMSCRIPTEN_KEEPALIVE int fl_state_load(const char *path, int *ids, int max) {
  size_t n = 0;
  last_error[0] = 0;
  return llama_state_seq_load_file(ctx, path, 0, ids, (size_t)max, &n) == 0 ? -1 : (int)n;
}

// The most likely next token; of equal logits the lowest id, as llama.cpp's greedy sampler picks.
EMSCRIPTEN_KEEPALIVE int fl_argmax(void) {
  const float *logits = llama_get_logits_ith(ctx, -1);
  int best = 0;
  for (int i = 1; i < n_vocab; i++)
    if (logits[i] > logits[best]) best = i;
  return best;
}

static const float *sort_logits;

static int by_logit(const void *a, const void *b) {
  float la = sort_logits[*(const int *)a], lb = sort_logits[*(const int *)b];
  if (la != lb) return la > lb ? -1 : 1;
  return *(const int *)a - *(const int *)b;
}

// The `k` most likely next tokens, by logit (ties: lowest id first), with their probabilities (softmax over the
// whole vocabulary). Returns how many were written.
EMSCRIPTEN_KEEPALIVE int fl_top(int k, int *ids, float *probs) {
  const float *logits = llama_get_logits_ith(ctx, -1);
  if (k > n_vocab) k = n_vocab;
  float max = logits[0];
  for (int i = 1; i < n_vocab; i++)
    if (logits[i] > max) max = logits[i];
  double sum = 0;
  for (int i = 0; i < n_vocab; i++) sum += exp((double)(logits[i] - max));
  int n = 0;
  if (k > 256) {
    // Many candidates (a grammar's last resort): sort the whole vocabulary.
    int *all = malloc(sizeof(int) * (size_t)n_vocab);
    for (int i = 0; i < n_vocab; i++) all[i] = i;
    sort_logits = logits;
    qsort(all, (size_t)n_vocab, sizeof(int), by_logit);
    memcpy(ids, all, sizeof(int) * (size_t)k);
    free(all);
    n = k;
  } else {
    // Insertion into a sorted list of k: few tokens ever enter it.
    for (int i = 0; i < n_vocab; i++) {
      float l = logits[i];
      if (n == k && !(l > logits[ids[n - 1]])) continue;
      int j = n < k ? n++ : n - 1;
      while (j > 0 && l > logits[ids[j - 1]]) {
        ids[j] = ids[j - 1];
        j--;
      }
      ids[j] = i;
    }
  }
  for (int i = 0; i < n; i++) probs[i] = (float)(exp((double)(logits[ids[i]] - max)) / sum);
  return n;
}

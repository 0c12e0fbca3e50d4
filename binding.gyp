{
  "targets": [
    {
      "target_name": "taas_splice",
      "sources": [
        "native/addon.c",
        "native/fdpass.c",
        "native/relay.c",
        "native/worker.c",
        "native/pump.c",
        "native/pipe_pool.c",
        "native/bucket.c"
      ],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}

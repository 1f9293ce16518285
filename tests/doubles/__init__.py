"""Test doubles of APIs that need Ryzen AI hardware or its toolchain: mlir-aie's IRON API (iron/)
and pyxrt (pyxrt, pyxrt_build). Tests only; the product never imports them."""

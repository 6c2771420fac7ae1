// File: error.h
//
// sbx::Error lives in include/sbx/error.h because the C++ client library exposes it; code inside
// the project includes it through this header.

#pragma once

#include "sbx/error.h"

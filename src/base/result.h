// File: result.h
//
// sbx::Result and the SBX_TRY family live in include/sbx/result.h because the C++ client library
// exposes them; code inside the project includes them through this header.

#pragma once

#include "sbx/result.h"

// Placeholder (issue 23): being written.
#pragma once

<?php

// examples/laravel/routes/pollgate.php — add to routes/web.php. Session-authenticated, like the panel.
// Deliberately NOT under /pollgate/: nginx sends that whole path to the gateway.

use App\Http\Controllers\PollgateTokenController;
use Illuminate\Support\Facades\Route;

Route::get('/app/pollgate-token', PollgateTokenController::class)
    ->middleware(['web', 'auth'])
    ->name('pollgate.token');
